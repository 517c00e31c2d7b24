using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.LoadBalancing.Health;

/// <summary>The outcome of one check: passed, or why not.</summary>
public readonly record struct HealthProbeResult(bool Passed, string? Failure)
{
    public static HealthProbeResult Pass { get; } = new(true, null);

    public static HealthProbeResult Fail(string reason) => new(false, reason);
}

/// <summary>Runs one active check against one endpoint over a fresh connection.</summary>
public static class HealthProbe
{
    private const int MaxStatusLine = 1024;

    /// <param name="host">The Host header of an HTTP check.</param>
    /// <param name="cancellationToken">Ends the check; the caller cancels it at the check's timeout.</param>
    /// <param name="configureSocket">Runs on the socket before it connects (the forwarder sets its SO_MARK there, so its own interception rules let the check pass).</param>
    public static async ValueTask<HealthProbeResult> RunAsync(HealthCheckOptions options, EndPoint endpoint, string host, CancellationToken cancellationToken, Action<Socket>? configureSocket = null)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            configureSocket?.Invoke(socket);
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return options.Kind == HealthCheckKind.Tcp
                ? HealthProbeResult.Pass
                : await GetAsync(socket, options.Path, options.Host ?? host, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return HealthProbeResult.Fail("timed out");
        }
        catch (SocketException ex)
        {
            return HealthProbeResult.Fail(ex.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => "connection refused",
                SocketError.ConnectionReset => "connection reset",
                SocketError.HostNotFound or SocketError.TryAgain => "host not found",
                SocketError.HostUnreachable or SocketError.NetworkUnreachable => "unreachable",
                var other => $"socket error {other}",
            });
        }
    }

    /// <summary>Sends a GET and reads just the status line: 2xx passes.</summary>
    private static async ValueTask<HealthProbeResult> GetAsync(Socket socket, string path, string host, CancellationToken cancellationToken)
    {
        var request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: forwarder-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        await socket.SendAsync(request, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(MaxStatusLine);
        try
        {
            var received = 0;
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer.AsMemory(received, MaxStatusLine - received), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return HealthProbeResult.Fail(received == 0 ? "closed without a response" : "response cut short");
                }

                received += read;
                var end = buffer.AsSpan(0, received).IndexOf("\r\n"u8);
                if (end >= 0)
                {
                    return ParseStatusLine(buffer.AsSpan(0, end));
                }

                if (received == MaxStatusLine)
                {
                    return HealthProbeResult.Fail("status line too long");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    internal static HealthProbeResult ParseStatusLine(ReadOnlySpan<byte> line)
    {
        // HTTP/1.x SSS reason
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || line[8] != (byte)' '
            || !char.IsAsciiDigit((char)line[9]) || !char.IsAsciiDigit((char)line[10]) || !char.IsAsciiDigit((char)line[11])
            || (line.Length > 12 && line[12] != (byte)' '))
        {
            return HealthProbeResult.Fail("not an HTTP/1.x response");
        }

        var status = ((line[9] - '0') * 100) + ((line[10] - '0') * 10) + (line[11] - '0');
        return status is >= 200 and < 300 ? HealthProbeResult.Pass : HealthProbeResult.Fail($"status {status}");
    }
}
