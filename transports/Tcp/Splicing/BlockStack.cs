namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Pinned buffers for one splicer thread, reused last-in first-out so the warmest one goes out
/// next. Single-threaded by design: only its thread touches it, so it needs no lock.
/// </summary>
internal sealed class BlockStack(int blockSize, int maxKept = 1024)
{
    private readonly Stack<byte[]> _blocks = new();

    public byte[] Rent() => _blocks.TryPop(out var block) ? block : GC.AllocateUninitializedArray<byte>(blockSize, pinned: true);

    public void Return(byte[] block)
    {
        if (_blocks.Count < maxKept)
        {
            _blocks.Push(block);
        }
    }
}
