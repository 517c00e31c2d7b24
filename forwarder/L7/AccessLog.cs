using System.Net;
using System.Text.Json;
using System.Threading.Channels;

namespace Forwarder.L7;

/// <summary>One request as the access log records it.</summary>
/// <param name="Endpoint">The upstream endpoint that answered, or null when none did.</param>
/// <param name="UpstreamMilliseconds">Request head sent to response head received, or null without a response.</param>
internal sealed record AccessLogEntry(
    DateTimeOffset Time,
    string Listener,
    string? Route,
    string? Service,
    string? Endpoint,
    IPAddress? Client,
    string Method,
    string Host,
    string Target,
    int Status,
    long BytesReceived,
    long BytesSent,
    double DurationMilliseconds,
    double? UpstreamMilliseconds,
    int Retries,
    string RequestId);

/// <summary>
/// A JSON-lines access log (a file, or stdout). Requests hand their entry to a bounded queue and
/// go on; one background writer serialises and writes them. When the writer falls behind the
/// queue drops entries and counts them rather than slowing the proxy down.
/// </summary>
internal sealed class AccessLog : IAsyncDisposable
{
    private const int QueueCapacity = 16 * 1024;

    private readonly Channel<AccessLogEntry> _queue = Channel.CreateBounded<AccessLogEntry>(
        new BoundedChannelOptions(QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });

    private readonly Stream _stream;
    private readonly Task _writing;
    private long _dropped;

    private AccessLog(string destination, Stream stream)
    {
        Destination = destination;
        _stream = stream;
        _writing = WriteLoopAsync();
    }

    public string Destination { get; }

    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>Opens the log: "stdout", or a file appended to (created if missing).</summary>
    /// <exception cref="IOException">The file cannot be opened.</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be written.</exception>
    public static AccessLog Open(string destination)
    {
        var stream = destination == "stdout"
            ? Console.OpenStandardOutput()
            : new FileStream(destination, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, useAsync: true);
        return new AccessLog(destination, stream);
    }

    public void Write(AccessLogEntry entry)
    {
        if (!_queue.Writer.TryWrite(entry))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writing.ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Writes entries as they come and flushes whenever the queue runs dry; never throws.</summary>
    private async Task WriteLoopAsync()
    {
        await using var json = new Utf8JsonWriter(_stream);
        try
        {
            while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (_queue.Reader.TryRead(out var entry))
                {
                    Serialize(json, entry);
                    await json.FlushAsync().ConfigureAwait(false);
                    json.Reset();
                    _stream.WriteByte((byte)'\n');
                }

                await _stream.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (IOException)
        {
            // The disk filled or the pipe closed: count what can no longer be written.
            while (_queue.Reader.TryRead(out _))
            {
                Interlocked.Increment(ref _dropped);
            }
        }
    }

    private static void Serialize(Utf8JsonWriter json, AccessLogEntry entry)
    {
        json.WriteStartObject();
        json.WriteString("time"u8, entry.Time);
        json.WriteString("listener"u8, entry.Listener);
        json.WriteString("route"u8, entry.Route);
        json.WriteString("service"u8, entry.Service);
        json.WriteString("endpoint"u8, entry.Endpoint);
        json.WriteString("client"u8, entry.Client?.ToString());
        json.WriteString("method"u8, entry.Method);
        json.WriteString("host"u8, entry.Host);
        json.WriteString("target"u8, entry.Target);
        json.WriteNumber("status"u8, entry.Status);
        json.WriteNumber("bytesReceived"u8, entry.BytesReceived);
        json.WriteNumber("bytesSent"u8, entry.BytesSent);
        json.WriteNumber("durationMs"u8, Math.Round(entry.DurationMilliseconds, 3));
        if (entry.UpstreamMilliseconds is { } upstream)
        {
            json.WriteNumber("upstreamMs"u8, Math.Round(upstream, 3));
        }
        else
        {
            json.WriteNull("upstreamMs"u8);
        }

        json.WriteNumber("retries"u8, entry.Retries);
        json.WriteString("requestId"u8, entry.RequestId);
        json.WriteEndObject();
    }
}
