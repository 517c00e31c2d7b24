namespace Forwarder.Transports.Tcp.Splicing;

/// <summary>
/// Pinned buffers for one splicer thread, reused last-in first-out so the warmest one goes out
/// next. Single-threaded by design: only its thread touches it, so it needs no lock.
/// </summary>
internal sealed class BlockStack(int blockSize, int maxKept = 1024)
{
    private readonly Stack<byte[]> _blocks = new();

    // The fewest blocks kept since the last TrimIdle: that many were never needed in between.
    private int _lowWater;

    /// <summary>Blocks rented and not returned yet: bytes read and not yet sent.</summary>
    public int Outstanding { get; private set; }

    /// <summary>Blocks kept for the next reads.</summary>
    public int Idle => _blocks.Count;

    public byte[] Rent()
    {
        Outstanding++;
        if (!_blocks.TryPop(out var block))
        {
            return GC.AllocateUninitializedArray<byte>(blockSize, pinned: true);
        }

        _lowWater = Math.Min(_lowWater, _blocks.Count);
        return block;
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
    public int Trim() => Release(_blocks.Count);

    /// <summary>
    /// Lets go of as many blocks as stayed idle all through the time since the last call (the
    /// stack's low-water mark); returns how many. Called every few seconds, it gives back what a
    /// burst left behind while keeping what steady load cycles through.
    /// </summary>
    public int TrimIdle() => Release(_lowWater);

    private int Release(int count)
    {
        var released = Math.Min(count, _blocks.Count);
        for (var i = 0; i < released; i++)
        {
            _blocks.Pop();
        }

        if (_blocks.Count == 0)
        {
            _blocks.TrimExcess();
        }

        _lowWater = _blocks.Count;
        return released;
    }
}
