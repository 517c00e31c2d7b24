using System.Buffers;

namespace Forwarder.Transports.Tcp.Splicing;

/// <content>The received blocks: chained into the sequence a read returns, and back to the pool once consumed.</content>
internal sealed partial class ReceiveReader
{
    private void Recycle(Segment segment)
    {
        segment.Block.Dispose();
        segment.Clear();
        segment.NextSpare = _spare;
        _spare = segment;
    }

    /// <summary>
    /// Under the monitor: with everything consumed and the producer not writing, the blocks go back
    /// to the pool, so an idle connection holds none.
    /// </summary>
    private void RecycleIfEmpty()
    {
        if (_buffered != 0 || _producerWriting || _readInProgress)
        {
            return;
        }

        while (_head is { } segment)
        {
            _head = (Segment?)segment.Next;
            Recycle(segment);
        }

        _tail = null;
        _headIndex = 0;
    }

    /// <summary>Under the monitor: once both sides are done, every block goes back.</summary>
    private void ReleaseIfDone()
    {
        if (!_readerCompleted || !_writerCompleted)
        {
            return;
        }

        for (var segment = _head; segment is not null; segment = (Segment?)segment.Next)
        {
            segment.Block.Dispose();
        }

        _head = _tail = null;
        _buffered = 0;
    }

    /// <summary>A received block in the chain a read returns.</summary>
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public IMemoryOwner<byte> Block { get; private set; } = null!;

        public int Length { get; private set; }

        public Segment? NextSpare { get; set; }

        public void Reset(IMemoryOwner<byte> block, long runningIndex)
        {
            Block = block;
            Length = 0;
            RunningIndex = runningIndex;
            Memory = default;
            Next = null;
        }

        public void Grow(int bytes)
        {
            Length += bytes;
            Memory = Block.Memory[..Length];
        }

        public void SetNext(Segment next) => Next = next;

        public void Clear()
        {
            Block = null!;
            Memory = default;
            Next = null;
        }
    }
}
