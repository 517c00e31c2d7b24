using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text;

namespace Forwarder.L7.Http1;

/// <summary>
/// Writes a head into an <see cref="IBufferWriter{T}"/> through the span it last handed out,
/// committing once at the end (or when a block fills up) instead of once per piece: a head is a
/// few dozen small pieces, and each would otherwise cost two calls through the writer. The idea
/// is Kestrel's BufferWriter. Nothing written shows in the writer before <see cref="Commit"/>.
/// </summary>
internal ref struct HeadOutput(IBufferWriter<byte> output)
{
    private Span<byte> _free = output.GetSpan();
    private int _uncommitted;

    public void Write(scoped ReadOnlySpan<byte> bytes)
    {
        if (bytes.TryCopyTo(_free))
        {
            Advance(bytes.Length);
            return;
        }

        WriteAcross(bytes);
    }

    public void WriteNumber(long value)
    {
        if (!value.TryFormat(_free, out var written, provider: CultureInfo.InvariantCulture))
        {
            Refill(20);
            value.TryFormat(_free, out written, provider: CultureInfo.InvariantCulture);
        }

        Advance(written);
    }

    public void WriteHexNumber(long value)
    {
        if (!value.TryFormat(_free, out var written, "x", CultureInfo.InvariantCulture))
        {
            Refill(16);
            value.TryFormat(_free, out written, "x", CultureInfo.InvariantCulture);
        }

        Advance(written);
    }

    /// <summary>Text the proxy composes (never client bytes, which are copied as they came).</summary>
    public void WriteAscii(string value)
    {
        if (_free.Length < value.Length)
        {
            Refill(value.Length);
        }

        Advance(Encoding.ASCII.GetBytes(value, _free));
    }

    /// <summary>An address as a Forwarded list item: IPv6 in brackets, as RFC 7239 does, so its colons stay unambiguous.</summary>
    public void WriteAddress(IPAddress address)
    {
        if (_free.Length < 64)
        {
            Refill(64);
        }

        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            _free[0] = (byte)'[';
            address.TryFormat(_free[1..], out var written);
            _free[written + 1] = (byte)']';
            Advance(written + 2);
        }
        else
        {
            address.TryFormat(_free, out var written);
            Advance(written);
        }
    }

    /// <summary>Hands what was written to the writer.</summary>
    public void Commit()
    {
        output.Advance(_uncommitted);
        _uncommitted = 0;
        _free = default;
    }

    private void Advance(int count)
    {
        _free = _free[count..];
        _uncommitted += count;
    }

    private void WriteAcross(scoped ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            if (_free.IsEmpty)
            {
                Refill(1);
            }

            var count = Math.Min(bytes.Length, _free.Length);
            bytes[..count].CopyTo(_free);
            Advance(count);
            bytes = bytes[count..];
        }
    }

    private void Refill(int size)
    {
        output.Advance(_uncommitted);
        _uncommitted = 0;
        _free = output.GetSpan(size);
    }
}
