namespace Forwarder.Transports.Quic;

/// <summary>
/// Pinned send chunks shared by a connection's streams, so steady-state writes allocate nothing.
/// Used only under the connection's lock.
/// </summary>
internal sealed class QuicChunkPool
{
    public const int ChunkSize = 16 * 1024;
    private const int MaxRetained = 256;

    private readonly Stack<byte[]> _free = new();

    public byte[] Rent() => _free.TryPop(out var chunk) ? chunk : GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: true);

    public void Return(byte[] chunk)
    {
        if (_free.Count < MaxRetained)
        {
            _free.Push(chunk);
        }
    }
}
