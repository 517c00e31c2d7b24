using System.Collections.Concurrent;

namespace Forwarder.Transports.Quic;

/// <summary>Pinned send chunks shared by a connection's streams, so steady-state writes allocate nothing.</summary>
internal sealed class QuicChunkPool
{
    public const int ChunkSize = 16 * 1024;
    private const int MaxRetained = 256;

    private readonly ConcurrentBag<byte[]> _free = [];

    public byte[] Rent() => _free.TryTake(out var chunk) ? chunk : GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true);

    public void Return(byte[] chunk)
    {
        if (_free.Count < MaxRetained)
        {
            _free.Add(chunk);
        }
    }
}
