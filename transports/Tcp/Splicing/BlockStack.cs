namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Pinned buffers for one splicer thread, reused last-in first-out so the warmest one goes out
/// next. Single-threaded by design: only its thread touches it, so it needs no lock.
/// </summary>
internal sealed class BlockStack(int blockSize, int maxKept = 1024)
{
    private readonly Stack<byte[]> _blocks = new();

    /// <summary>Blocks rented and not returned yet: bytes read and not yet sent.</summary>
    public int Outstanding { get; private set; }

    /// <summary>Blocks kept for the next reads.</summary>
    public int Idle => _blocks.Count;

    public byte[] Rent()
    {
        Outstanding++;
        return _blocks.TryPop(out var block) ? block : GC.AllocateUninitializedArray<byte>(blockSize, pinned: true);
    }

    public void Return(byte[] block)
    {
        Outstanding--;
        if (_blocks.Count < maxKept)
        {
            _blocks.Push(block);
        }
    }

    /// <summary>Lets go of every idle block, for the GC to take back after a peak; returns how many.</summary>
    public int Trim()
    {
        var released = _blocks.Count;
        _blocks.Clear();
        _blocks.TrimExcess();
        return released;
    }
}
