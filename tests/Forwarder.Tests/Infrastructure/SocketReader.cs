using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Tests.Infrastructure;

/// <summary>Buffered reads off a socket for HTTP tests: lines, heads, exact byte counts and message bodies.</summary>
internal sealed class SocketReader(Socket socket)
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    /// <summary>A head (lines up to the empty one, each with its CRLF), or null when the connection closed first.</summary>
    public async Task<string?> ReadHeadAsync()
    {
        var head = new StringBuilder();
        while (await ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                return head.Length == 0 ? null : head.ToString();
            }

            head.Append(line).Append("\r\n");
        }

        return null;
    }

    public async Task<string?> ReadLineAsync()
    {
        var line = new List<byte>();
        while (true)
        {
            if (_start == _end && !await FillAsync())
            {
                return null;
            }

            var b = _buffer[_start++];
            if (b == (byte)'\n')
            {
                return Encoding.Latin1.GetString([.. line]).TrimEnd('\r');
            }

            line.Add(b);
        }
    }

    /// <summary>Exactly <paramref name="count"/> bytes, or null when the connection closed first.</summary>
    public async Task<byte[]?> ReadExactlyAsync(int count)
    {
        var result = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            if (_start == _end && !await FillAsync())
            {
                return null;
            }

            var take = Math.Min(count - filled, _end - _start);
            _buffer.AsSpan(_start, take).CopyTo(result.AsSpan(filled));
            _start += take;
            filled += take;
        }

        return result;
    }

    /// <summary>Everything until the peer closes (or resets) the connection.</summary>
    public async Task<byte[]> ReadToEndAsync()
    {
        using var all = new MemoryStream();
        do
        {
            all.Write(_buffer, _start, _end - _start);
            _start = _end;
        }
        while (await FillAsync());

        return all.ToArray();
    }

    /// <summary>The body a head announces (Content-Length or chunked, de-chunked); null when the connection closed first.</summary>
    public async Task<byte[]?> ReadBodyAsync(string head)
    {
        if (HeaderOf(head, "content-length") is { } length)
        {
            return await ReadExactlyAsync(int.Parse(length, CultureInfo.InvariantCulture));
        }

        if (HeaderOf(head, "transfer-encoding")?.EndsWith("chunked", StringComparison.OrdinalIgnoreCase) != true)
        {
            return [];
        }

        using var body = new MemoryStream();
        while (true)
        {
            var sizeLine = await ReadLineAsync();
            if (sizeLine is null)
            {
                return null;
            }

            var size = int.Parse(sizeLine.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                while (await ReadLineAsync() is { Length: > 0 })
                {
                    // Trailers.
                }

                return body.ToArray();
            }

            if (await ReadExactlyAsync(size) is not { } chunk)
            {
                return null;
            }

            body.Write(chunk);
            await ReadLineAsync();
        }
    }

    /// <summary>The value of the first header named <paramref name="name"/> (case-insensitive) in a head, or null.</summary>
    public static string? HeaderOf(string head, string name)
        => head.Split("\r\n").Skip(1)
            .Select(line => line.Split(':', 2))
            .Where(parts => parts.Length == 2 && parts[0].Equals(name, StringComparison.OrdinalIgnoreCase))
            .Select(parts => parts[1].Trim())
            .FirstOrDefault();

    private async Task<bool> FillAsync()
    {
        int read;
        try
        {
            using var timeout = new CancellationTokenSource(SocketClient.ReadTimeout);
            read = await socket.ReceiveAsync(_buffer, SocketFlags.None, timeout.Token);
        }
        catch (SocketException)
        {
            return false;
        }

        (_start, _end) = (0, read);
        return read > 0;
    }
}
