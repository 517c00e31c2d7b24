using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Forwarder.Transports.Memory;

/// <summary>
/// A pool of fixed-size blocks on the pinned object heap. Sockets can use them without pinning
/// per operation, and the GC never has to move or scan them. Blocks are kept once created, so the
/// pool's size follows the peak of in-flight data (which pipes' pause thresholds bound), until
/// <see cref="TrimIdle"/> (called periodically) lets go of the ones no rent reached since its last
/// call, or <see cref="Trim"/> of all idle ones. Each thread keeps its few most recently returned
/// blocks to hand out first.
/// </summary>
public sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    private const int RecentPerThread = 16;

    [ThreadStatic]
    private static Stack<Block>? t_recent;

    private readonly ConcurrentQueue<Block> _blocks = new();
    private readonly int _blockSize;

    // Blocks in the shared queue, and the fewest it held since the last TrimIdle: that many sat
    // there unused all along. Counted beside the queue, whose Count is not cheap.
    private int _queued;
    private int _lowWater;
    private bool _disposed;

    public PinnedBlockMemoryPool(int blockSize = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 512);
        _blockSize = blockSize;
    }

    public override int MaxBufferSize => _blockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > _blockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"Blocks are {_blockSize} bytes.");
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t_recent is { Count: > 0 } recent && recent.Peek().Pool == this)
        {
            return recent.Pop();
        }

        if (!_blocks.TryDequeue(out var block))
        {
            return new Block(this, _blockSize);
        }

        var left = Interlocked.Decrement(ref _queued);
        if (left < Volatile.Read(ref _lowWater))
        {
            Volatile.Write(ref _lowWater, left);
        }

        return block;
    }

    /// <summary>
    /// Lets go of the idle blocks in the shared queue (the few each thread keeps stay), for the GC
    /// to take back; returns how many. Blocks in use come back to the pool as usual.
    /// </summary>
    public int Trim() => Release(int.MaxValue);

    /// <summary>
    /// Lets go of as many blocks as the shared queue held unused all through the time since the
    /// last call (its low-water mark), for the GC to take back; returns how many. Called every few
    /// seconds, it gives back what a burst left behind while keeping what steady load cycles through.
    /// </summary>
    public int TrimIdle() => Release(Volatile.Read(ref _lowWater));

    private int Release(int count)
    {
        var released = 0;
        while (released < count && _blocks.TryDequeue(out _))
        {
            Interlocked.Decrement(ref _queued);
            released++;
        }

        Volatile.Write(ref _lowWater, Math.Max(0, Volatile.Read(ref _queued)));
        return released;
    }

    protected override void Dispose(bool disposing) => _disposed = true;

    private void Return(Block block)
    {
        if (_disposed)
        {
            return;
        }

        // Last in, first out on the returning thread: an event loop that reads into a block,
        // forwards it and returns it gets the same, cache-warm block for its next read. The shared
        // queue behind it would hand out the coldest block of all.
        var recent = t_recent ??= new Stack<Block>(RecentPerThread);
        if (recent.Count < RecentPerThread && (recent.Count == 0 || recent.Peek().Pool == this))
        {
            recent.Push(block);
            return;
        }

        _blocks.Enqueue(block);
        Interlocked.Increment(ref _queued);
    }

    private sealed class Block : MemoryManager<byte>
    {
        private readonly byte[] _array;

        public Block(PinnedBlockMemoryPool pool, int size)
        {
            Pool = pool;
            _array = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        }

        public PinnedBlockMemoryPool Pool { get; }

        public override Memory<byte> Memory => CreateMemory(_array.Length);

        public override Span<byte> GetSpan() => _array;

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
            => new((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_array)) + elementIndex);

        public override void Unpin()
        {
        }

        protected override bool TryGetArray(out ArraySegment<byte> segment)
        {
            segment = new ArraySegment<byte>(_array);
            return true;
        }

        protected override void Dispose(bool disposing) => Pool.Return(this);
    }
}
