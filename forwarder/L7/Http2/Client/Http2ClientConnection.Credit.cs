using System.Runtime.CompilerServices;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>The request body and trailers going out, and flow-control credit both ways (RFC 9113 6.9).</summary>
internal sealed partial class Http2ClientConnection
{
    internal ValueTask WriteTrailers(Http2ClientExchange stream, int generation, Http2HeaderList trailers)
    {
        lock (_gate)
        {
            if (Unwritable(stream, generation) is { } error)
            {
                return ValueTask.FromException(error);
            }

            stream.LocalEnded = true;
            WriteHeaderBlock(stream.Id, trailers, endStream: true);
            CloseIfEnded(stream);
        }

        Flush();
        return ValueTask.CompletedTask;
    }

    /// <summary>Sends DATA as far as both windows allow; waits for credit for the rest.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask WriteDataAsync(Http2ClientExchange stream, int generation, ReadOnlyMemory<byte> data, bool endStream)
    {
        while (true)
        {
            var wait = default(ValueTask);
            bool done;
            lock (_gate)
            {
                if (Unwritable(stream, generation) is { } error)
                {
                    throw error;
                }

                done = TryWriteData(stream, ref data, endStream);
                if (!done)
                {
                    stream.WindowWaiting = true;
                    _windowWaiters.Add(stream);
                    wait = stream.WindowSignal.Arm();
                }
            }

            Flush();
            if (done)
            {
                return;
            }

            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>Under the lock: writes DATA frames while both windows have credit; true once all is sent.</summary>
    private bool TryWriteData(Http2ClientExchange stream, ref ReadOnlyMemory<byte> data, bool endStream)
    {
        if (data.IsEmpty && endStream)
        {
            // END_STREAM alone: an empty DATA frame, which flow control does not count.
            Http2FrameWriter.WriteData(Out, stream.Id, [], endStream: true);
        }

        while (!data.IsEmpty)
        {
            var granted = (int)Math.Min(Math.Min(data.Length, _peerMaxFrameSize), Math.Min(_sendWindow.Available, stream.SendWindow.Available));
            if (granted <= 0)
            {
                return false;
            }

            _sendWindow.Take(granted);
            stream.SendWindow.Take(granted);
            Http2FrameWriter.WriteData(Out, stream.Id, data.Span[..granted], endStream && granted == data.Length);
            data = data[granted..];
        }

        if (endStream)
        {
            stream.LocalEnded = true;
            CloseIfEnded(stream);
        }

        return true;
    }

    /// <summary>The caller consumed <paramref name="length"/> body bytes: credit for the stream, sent once half its window is due (the connection's went back on arrival).</summary>
    internal void Consumed(Http2ClientExchange stream, int generation, int length)
    {
        Http2ResponseBudget? budget;
        lock (_gate)
        {
            // A lease that ended meanwhile: its dispose gave the unread credit back already.
            if (_closed || stream.Generation != generation)
            {
                return;
            }

            // Captured under the lock, as Unbind does: the lease may end (and unbind) once it is let go.
            budget = ConsumeCredit(stream, length, Out) ? stream.Budget : null;
        }

        Flush();
        budget?.Wake();
    }

    private Exception? Unwritable(Http2ClientExchange stream, int generation)
    {
        if (stream.Generation != generation)
        {
            return StaleHandle();
        }

        if (stream.Error is { } error)
        {
            return error;
        }

        if (_closed)
        {
            return Lost(stream.Id, Failure);
        }

        return stream.LocalEnded ? new InvalidOperationException("The request has already ended.") : null;
    }

    private void OnWindowUpdate(in Http2Frame frame)
    {
        lock (_gate)
        {
            if (frame.StreamId == 0)
            {
                _sendWindow.Credit(frame.WindowIncrement, 0);
                TakeWindowWaiters(null);
            }
            else
            {
                RequireOpened(frame.StreamId);
                if (!_streams.TryGetValue(frame.StreamId, out var stream))
                {
                    return;
                }

                stream.SendWindow.Credit(frame.WindowIncrement, frame.StreamId);
                TakeWindowWaiters(stream);
            }
        }

        WakeWindowWaiters();
    }

    /// <summary>
    /// Under the lock: moves the streams waiting for send credit (all, or just <paramref name="only"/>)
    /// to be woken once the lock is let go, each held meanwhile: a caller that disposes its handle
    /// without awaiting its write must not let the exchange be recycled before the wake, or the
    /// wake would land on the next owner's armed signal (a spurious wake that leaves it listed
    /// twice, and the second Set of one arming throws on the reader).
    /// </summary>
    private void TakeWindowWaiters(Http2ClientExchange? only)
    {
        if (only is not null)
        {
            if (only.WindowWaiting)
            {
                only.WindowWaiting = false;
                _windowWaiters.Remove(only);
                only.AddReference();
                _waking.Add(only);
            }

            return;
        }

        foreach (var stream in _windowWaiters)
        {
            stream.WindowWaiting = false;
            stream.AddReference();
            _waking.Add(stream);
        }

        _windowWaiters.Clear();
    }

    /// <summary>On the reader, outside the lock: wakes the writers <see cref="TakeWindowWaiters"/> picked; they look at their windows again.</summary>
    private void WakeWindowWaiters()
    {
        foreach (var stream in _waking)
        {
            stream.WindowSignal.Set();
            stream.Release();
        }

        _waking.Clear();
    }
}
