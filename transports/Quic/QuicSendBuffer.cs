using System.Runtime.CompilerServices;

namespace Forwarder.Transports.Quic;

/// <summary>
/// A stream's written-but-unacknowledged bytes. ngtcp2 keeps pointers to stream data until it is
/// acknowledged (it retransmits from them), so the bytes live in pinned fixed-size chunks that stay
/// put until acked_stream_data_offset passes them. Accessed only under the connection's lock.
/// </summary>
internal sealed unsafe class QuicSendBuffer(QuicChunkPool pool)
{
    private readonly List<byte[]> _chunks = [];
    private long _baseOffset; // stream offset of _chunks[0][0]

    public long Acked { get; private set; }
    public long Sent { get; private set; }
    public long Written { get; private set; }
    public long Unacked => Written - Acked;
    public bool FinRequested { get; set; }
    public bool FinSent { get; private set; }

    public bool HasPending => Sent < Written || (FinRequested && !FinSent);

    public void Append(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var inTail = (int)((Written - _baseOffset) % QuicChunkPool.ChunkSize);
            if (inTail == 0 && Written - _baseOffset == (long)_chunks.Count * QuicChunkPool.ChunkSize)
            {
                _chunks.Add(pool.Rent());
            }

            var tail = _chunks[^1].AsSpan(inTail);
            var n = Math.Min(tail.Length, data.Length);
            data[..n].CopyTo(tail);
            data = data[n..];
            Written += n;
        }
    }

    /// <summary>The next contiguous run of unsent bytes (one chunk at most).</summary>
    public Ngtcp2Native.Vec NextUnsent()
    {
        if (Sent == Written)
        {
            return default;
        }

        var relative = Sent - _baseOffset;
        var chunk = _chunks[(int)(relative / QuicChunkPool.ChunkSize)];
        var start = (int)(relative % QuicChunkPool.ChunkSize);
        var length = (int)Math.Min(QuicChunkPool.ChunkSize - start, Written - Sent);
        // The chunk is pinned (allocated on the pinned object heap), so the address is stable.
        return new Ngtcp2Native.Vec { Base = (byte*)Unsafe.AsPointer(ref chunk[start]), Length = (nuint)length };
    }

    public void OnSent(long length, bool fin)
    {
        Sent += length;
        if (fin && Sent == Written)
        {
            FinSent = true;
        }
    }

    /// <summary>ngtcp2 reports acknowledged data in order, so the acked prefix only grows.</summary>
    public void OnAcked(long offset, long length)
    {
        Acked = Math.Max(Acked, offset + length);
        while (_chunks.Count > 0 && _baseOffset + QuicChunkPool.ChunkSize <= Acked)
        {
            pool.Return(_chunks[0]);
            _chunks.RemoveAt(0);
            _baseOffset += QuicChunkPool.ChunkSize;
        }
    }

    public void Release()
    {
        foreach (var chunk in _chunks)
        {
            pool.Return(chunk);
        }

        _chunks.Clear();
    }
}
