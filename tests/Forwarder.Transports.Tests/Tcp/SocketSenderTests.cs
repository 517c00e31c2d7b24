using System.Buffers;
using Forwarder.Transports.Tcp;

namespace Forwarder.Transports.Tests.Tcp;

public sealed class SocketSenderTests
{
    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(8, new[] { 8 })]
    [InlineData(9, new[] { 8, 1 })]
    [InlineData(20, new[] { 8, 8, 4 })]
    public void FirstSegments_SplitsIntoSendsOfAtMostEightSegments(int segments, int[] expectedSends)
    {
        var buffer = Sequence(segments);
        var sends = new List<int>();
        var received = new List<byte>();

        // The remainder goes back into the same variable, as the send loop does.
        while (!buffer.IsEmpty)
        {
            var send = SocketSender.FirstSegments(buffer, out buffer);
            sends.Add(SegmentCount(send));
            received.AddRange(send.ToArray());
        }

        Assert.Equal(expectedSends, sends);
        Assert.Equal(Enumerable.Range(0, segments).SelectMany(i => Enumerable.Repeat((byte)i, 3)), received);
    }

    private static ReadOnlySequence<byte> Sequence(int segments)
    {
        var first = new Segment(Enumerable.Repeat((byte)0, 3).ToArray(), 0);
        var last = first;
        for (var i = 1; i < segments; i++)
        {
            last = last.Append(Enumerable.Repeat((byte)i, 3).ToArray());
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static int SegmentCount(ReadOnlySequence<byte> sequence)
    {
        var count = 0;
        foreach (var memory in sequence)
        {
            count += memory.IsEmpty ? 0 : 1;
        }

        return count;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes, long runningIndex)
        {
            Memory = bytes;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
