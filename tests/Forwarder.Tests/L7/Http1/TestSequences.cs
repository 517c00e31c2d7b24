using System.Buffers;

namespace Forwarder.Tests.L7.Http1;

/// <summary>Bytes as a chain of segments, the way a pipe hands them over after several receives.</summary>
internal static class TestSequences
{
    /// <summary>Segments of <paramref name="size"/> bytes (the last one shorter); one segment when the bytes fit in one.</summary>
    public static ReadOnlySequence<byte> Chunks(byte[] bytes, int size)
    {
        var cuts = new List<int>();
        for (var offset = size; offset < bytes.Length; offset += size)
        {
            cuts.Add(offset);
        }

        return Cut(bytes, [.. cuts]);
    }

    /// <summary>One segment per stretch between cuts (ascending; equal cuts make empty segments).</summary>
    public static ReadOnlySequence<byte> Cut(byte[] bytes, params int[] cuts)
    {
        if (cuts.Length == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var first = new Segment(bytes.AsMemory(0, cuts[0]), 0);
        var last = first;
        for (var i = 0; i < cuts.Length; i++)
        {
            var end = i + 1 < cuts.Length ? cuts[i + 1] : bytes.Length;
            last = last.Append(bytes.AsMemory(cuts[i], end - cuts[i]));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
