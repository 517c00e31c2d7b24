using System.Buffers;
using System.Runtime.InteropServices;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// A receive block with <see cref="Headroom"/> bytes kept free in front of it, so a consumer that
/// frames what it reads (a yamux stream, whose data frame has a 12-byte header) writes the header
/// in place and hands header and payload on as one span, with no copy into a framing buffer.
/// The memory in front of a payload is the headroom or bytes already consumed: either way dead.
/// </summary>
internal sealed class FrameBlock : MemoryManager<byte>
{
    /// <summary>A yamux header's size.</summary>
    public const int Headroom = 12;

    private readonly FrameBlockPool _pool;
    private IMemoryOwner<byte>? _inner;

    public FrameBlock(FrameBlockPool pool) => _pool = pool;

    /// <summary>
    /// The frame whose payload starts at <paramref name="start"/> of this block's memory: the
    /// <see cref="Headroom"/> bytes before it, for the header, and <paramref name="length"/> bytes.
    /// Only for bytes the caller has consumed up to <paramref name="start"/>: the header overwrites what was there.
    /// </summary>
    public Memory<byte> Frame(int start, int length) => Inner.Memory.Slice(start, Headroom + length);

    /// <summary>The block whose memory <paramref name="memory"/> is, and where in it <paramref name="memory"/> starts; false for any other memory.</summary>
    public static bool TryGet(ReadOnlyMemory<byte> memory, out FrameBlock block, out int start)
        => MemoryMarshal.TryGetMemoryManager(memory, out block!, out start, out _);

    internal void Wrap(IMemoryOwner<byte> inner) => _inner = inner;

    public override Span<byte> GetSpan() => Inner.Memory.Span[Headroom..];

    public override MemoryHandle Pin(int elementIndex = 0) => Inner.Memory[(Headroom + elementIndex)..].Pin();

    // The inner block is pinned for life; Pin's handle unpins nothing.
    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        // The pipe disposes a segment's block once it is consumed: the inner block goes back to
        // its pool and this wrapper to the connection's, for its next block.
        var inner = Interlocked.Exchange(ref _inner, null);
        if (inner is not null)
        {
            inner.Dispose();
            _pool.Returned(this);
        }
    }

    private IMemoryOwner<byte> Inner => _inner ?? throw new ObjectDisposedException(nameof(FrameBlock));
}

/// <summary>
/// A connection's receive pool: the transport's blocks as they are until <see cref="Framing"/> is
/// set, then each wrapped as a <see cref="FrameBlock"/>. Its wrappers are reused (a receive pipe
/// holds a block or two at a time), so framing allocates nothing per block once warm.
/// </summary>
internal sealed class FrameBlockPool(MemoryPool<byte> inner) : MemoryPool<byte>
{
    private const int Spares = 4;

    private FrameBlock?[]? _spares;
    private volatile bool _framing;

    /// <summary>From now on blocks leave <see cref="FrameBlock.Headroom"/> bytes free in front.</summary>
    public bool Framing
    {
        get => _framing;
        set => _framing = value;
    }

    public override int MaxBufferSize => inner.MaxBufferSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        var block = inner.Rent(minBufferSize);
        if (!_framing || block.Memory.Length < minBufferSize + FrameBlock.Headroom)
        {
            return block;
        }

        var spares = _spares ??= new FrameBlock?[Spares];
        FrameBlock? frame = null;
        for (var i = 0; i < spares.Length && frame is null; i++)
        {
            frame = Interlocked.Exchange(ref spares[i], null);
        }

        frame ??= new FrameBlock(this);
        frame.Wrap(block);
        return frame;
    }

    /// <summary>A wrapper whose block went back: kept for the next block if a slot is free (then dropped).</summary>
    internal void Returned(FrameBlock block)
    {
        var spares = _spares!;
        for (var i = 0; i < spares.Length; i++)
        {
            if (Interlocked.CompareExchange(ref spares[i], block, null) is null)
            {
                return;
            }
        }
    }

    protected override void Dispose(bool disposing)
    {
        // The transport's pool is shared; only the wrappers are ours, and they hold nothing.
    }
}
