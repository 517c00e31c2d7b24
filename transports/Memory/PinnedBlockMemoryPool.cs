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
/// <remarks>
/// Letting a pinned block go for the GC to collect does not give its memory back: the pinned
/// object heap is never compacted, so one block still in use keeps its whole region committed and
/// resident, free space included (after a burst through a node link, 90 MiB free in 93 MiB of
/// pinned heap, held by 3 MiB of live blocks). So blocks are carved, page-aligned, out of slabs
/// of about 1 MiB, and a block let go has its pages returned to the system at once
/// (<c>madvise(MADV_DONTNEED)</c>: the mapping stays, and reads zeros until written again) and
/// waits, cold, in its slab for a rent that finds no warm block. A slab whose blocks are all cold
/// is dropped whole for the GC to take back.
/// </remarks>
public sealed partial class PinnedBlockMemoryPool : MemoryPool<byte>
{
    private const int RecentPerThread = 16;
    private const int SlabBytes = 1024 * 1024;
    private const int DontNeed = 4; // MADV_DONTNEED

    [ThreadStatic]
    private static RecentBlocks? t_recent;

    private readonly ConcurrentQueue<Block> _blocks = new();
    private readonly int _blockSize;

    // Pages can be returned only where a block covers them whole: blocks a multiple of the page
    // size are laid out on page boundaries; smaller or odd sizes keep their pages until their
    // slab goes.
    private readonly bool _releasesPages;

    // The slabs not let go yet, oldest first: rents that find no warm block take the old slabs'
    // cold blocks first, so the newer ones empty out and can go. The lock (with each slab's cold
    // blocks behind it) is taken only by such rents and when blocks are let go, never on a rent
    // the queues serve.
    private readonly Lock _slabLock = new();
    private readonly List<Slab> _slabs = [];

    // Blocks in the shared queue, and the fewest it held since the last TrimIdle: that many sat
    // there unused all along. Counted beside the queue, whose Count is not cheap.
    private int _queued;
    private int _lowWater;
    private bool _disposed;

    public PinnedBlockMemoryPool(int blockSize = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 512);
        _blockSize = blockSize;
        _releasesPages = blockSize % Environment.SystemPageSize == 0;
    }

    public override int MaxBufferSize => _blockSize;

    /// <summary>Slabs held: the ones with at least one block rented, warm, or kept by a thread.</summary>
    public int Slabs
    {
        get
        {
            lock (_slabLock)
            {
                return _slabs.Count;
            }
        }
    }

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
            return RentCold();
        }

        var left = Interlocked.Decrement(ref _queued);
        if (left < Volatile.Read(ref _lowWater))
        {
            Volatile.Write(ref _lowWater, left);
        }

        return block;
    }

    /// <summary>
    /// Lets go of the idle blocks in the shared queue (the few each thread keeps stay), returning
    /// their pages to the system; returns how many. Blocks in use come back to the pool as usual.
    /// </summary>
    public int Trim() => Release(int.MaxValue);

    /// <summary>
    /// Lets go of as many blocks as the shared queue held unused all through the time since the
    /// last call (its low-water mark), returning their pages to the system; returns how many.
    /// Called every few seconds, it gives back what a burst left behind while keeping what steady
    /// load cycles through.
    /// </summary>
    public int TrimIdle() => Release(Volatile.Read(ref _lowWater));

    private Block RentCold()
    {
        lock (_slabLock)
        {
            foreach (var slab in _slabs)
            {
                if (slab.Cold.TryPop(out var cold))
                {
                    return cold;
                }
            }

            var created = new Slab(this);
            _slabs.Add(created);
            return created.Cold.Pop();
        }
    }

    private int Release(int count)
    {
        List<Block>? idle = null;
        while ((idle?.Count ?? 0) < count && _blocks.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _queued);
            (idle ??= []).Add(block);
        }

        Volatile.Write(ref _lowWater, Math.Max(0, Volatile.Read(ref _queued)));
        if (idle is null)
        {
            return 0;
        }

        if (_releasesPages)
        {
            ReleasePages(idle);
        }

        lock (_slabLock)
        {
            foreach (var block in idle)
            {
                var slab = block.Slab;
                slab.Cold.Push(block);
                if (slab.Cold.Count == slab.Blocks)
                {
                    _slabs.Remove(slab);
                }
            }
        }

        return idle.Count;
    }

    /// <summary>
    /// Returns the blocks' pages to the system (their contents are not needed: the blocks are
    /// idle), one call per run of adjacent blocks: each call costs a TLB shootdown on the CPUs the
    /// process runs on, 1.4 ms per call measured on the loaded 2-core machine, so a call per block
    /// took over 2 s for the 1,600 blocks a burst left.
    /// </summary>
    private unsafe void ReleasePages(List<Block> blocks)
    {
        blocks.Sort(static (a, b) => a.Address.CompareTo(b.Address));
        var start = blocks[0].Address;
        var end = start + _blockSize;
        for (var i = 1; i < blocks.Count; i++)
        {
            var address = blocks[i].Address;
            if (address != end)
            {
                // A failure (which the arguments rule out) only leaves the pages resident.
                _ = MAdvise((void*)start, (nuint)(end - start), DontNeed);
                start = address;
            }

            end = address + _blockSize;
        }

        _ = MAdvise((void*)start, (nuint)(end - start), DontNeed);
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
        var recent = t_recent ??= new RecentBlocks();
        if (recent.Count < RecentPerThread && (recent.Count == 0 || recent.Peek().Pool == this))
        {
            recent.Push(block);
            return;
        }

        Enqueue(block);
    }

    private void Enqueue(Block block)
    {
        _blocks.Enqueue(block);
        Interlocked.Increment(ref _queued);
    }

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static unsafe partial int MAdvise(void* address, nuint length, int advice);

    /// <summary>
    /// The blocks one thread keeps for itself. When the thread ends (the thread pool retires idle
    /// workers) they go back to their pool's shared queue: collected with the thread's statics,
    /// they would keep their slab from ever going whole.
    /// </summary>
    private sealed class RecentBlocks() : Stack<Block>(RecentPerThread)
    {
        ~RecentBlocks()
        {
            while (TryPop(out var block))
            {
                if (!block.Pool._disposed)
                {
                    block.Pool.Enqueue(block);
                }
            }
        }
    }

    /// <summary>
    /// One pinned array cut into blocks. All its blocks start cold (the array's untouched pages are
    /// not resident yet); rents take them, <see cref="Release"/> brings them back.
    /// </summary>
    private sealed class Slab
    {
        public unsafe Slab(PinnedBlockMemoryPool pool)
        {
            var size = pool._blockSize;
            var page = pool._releasesPages ? Environment.SystemPageSize : 0;
            Blocks = Math.Max(1, SlabBytes / size);
            var array = GC.AllocateUninitializedArray<byte>((Blocks * size) + page, pinned: true);
            var address = (nuint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
            var first = page == 0 ? 0 : (int)((nuint)page - (address % (nuint)page)) % page;
            Cold = new Stack<Block>(Blocks);
            for (var i = Blocks - 1; i >= 0; i--)
            {
                Cold.Push(new Block(pool, this, array, first + (i * size), size));
            }
        }

        public int Blocks { get; }

        public Stack<Block> Cold { get; }

    }

    private sealed unsafe class Block(PinnedBlockMemoryPool pool, Slab slab, byte[] array, int offset, int length) : MemoryManager<byte>
    {
        public PinnedBlockMemoryPool Pool { get; } = pool;

        /// <summary>Where the block starts: the slab is pinned, so it never moves.</summary>
        public nint Address { get; } = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array)) + offset;

        public Slab Slab { get; } = slab;

        public override Memory<byte> Memory => CreateMemory(length);

        public override Span<byte> GetSpan() => array.AsSpan(offset, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)Address + elementIndex);

        public override void Unpin()
        {
        }

        protected override bool TryGetArray(out ArraySegment<byte> segment)
        {
            segment = new ArraySegment<byte>(array, offset, length);
            return true;
        }

        protected override void Dispose(bool disposing) => Pool.Return(this);
    }
}
