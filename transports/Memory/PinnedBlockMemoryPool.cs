using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Forwarder.Transports.Memory;

/// <summary>
/// A pool of fixed-size blocks on the pinned object heap. Sockets can use them without pinning
/// per operation, and the GC never has to move or scan them. Blocks are kept once created, so the
/// pool's size follows the peak of in-flight data (which pipes' pause thresholds bound), until
/// <see cref="Trim"/> lets the idle ones go after a peak. Each thread keeps its few most recently
/// returned blocks to hand out first.
/// </summary>
public sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    private const int RecentPerThread = 16;

    [ThreadStatic]
    private static Stack<Block>? t_recent;

    private readonly ConcurrentQueue<Block> _blocks = new();
    private readonly int _blockSize;
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

        return _blocks.TryDequeue(out var block) ? block : new Block(this, _blockSize);
    }

    /// <summary>
    /// Lets go of the idle blocks in the shared queue (the few each thread keeps stay), for the GC
    /// to take back; returns how many. Blocks in use come back to the pool as usual.
    /// </summary>
    public int Trim()
    {
        var released = 0;
        while (_blocks.TryDequeue(out _))
        {
            released++;
        }

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
