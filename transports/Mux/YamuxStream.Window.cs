using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Forwarder.Transports.Mux;

/// <summary>A yamux stream's flow control: the window it may send into, and the window it gives the peer back.</summary>
public sealed partial class YamuxStream
{
    /// <summary>Grants the peer more than the spec's initial window, if configured: sent with the SYN or ACK.</summary>
    internal uint InitialGrant()
    {
        var extra = _windowGrant - YamuxOptions.SpecInitialWindow;
        if (extra <= 0)
        {
            return 0;
        }

        Interlocked.Add(ref _receiveCredit, extra);
        return (uint)extra;
    }

    internal void OnWindowUpdate(uint delta)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            _sendWindow += delta;
            waiter = _windowWaiter;
            _windowWaiter = null;
        }

        waiter?.TrySetResult();
    }

    /// <summary>
    /// The session's writer has room for more data frames again (see YamuxSession.Backpressure.cs).
    /// False when the stream no longer waits for it (it was woken otherwise, or reset, or queued
    /// twice): the session then gives the room to the next stream instead.
    /// </summary>
    internal bool OnRoom()
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (!_waitingForRoom)
            {
                return false;
            }

            _waitingForRoom = false;
            waiter = _windowWaiter;
            _windowWaiter = null;
        }

        waiter?.TrySetResult();
        return true;
    }

    /// <summary>
    /// The send window once it is open and the session has room for a frame; -1 when the stream
    /// was reset meanwhile. A stream being disposed does not wait for room, so a dispose waits
    /// for the peer's window at most, never for the peer to read other streams' data.
    /// </summary>
    private async ValueTask<long> WaitForWindowAsync()
    {
        while (true)
        {
            Task wait;
            bool forRoom;
            lock (_lock)
            {
                if (_reset)
                {
                    return -1;
                }

                forRoom = _sendWindow > 0;
                _waitingForRoom = forRoom && !_disposing && !_session.HasRoom;
                if (forRoom && !_waitingForRoom)
                {
                    return _sendWindow;
                }

                _windowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _windowWaiter.Task;
            }

            if (forRoom)
            {
                _session.AwaitRoom(this);
            }

            try
            {
                await wait.ConfigureAwait(false);
            }
            catch (Exception) when (Volatile.Read(ref _reset))
            {
                return -1;
            }
        }
    }

    /// <summary>
    /// Sends the window the consumer freed (on the session's reader, or right away when it is
    /// idle); nothing once the peer is done sending (FIN or reset): it needs no more window. After
    /// our FIN, only once the peer is out of window: it may send its last data and FIN at any
    /// moment, and HashiCorp's yamux, having both FINs, forgets the stream and warns of an update
    /// for it; a peer out of window has not sent its FIN yet, or sent it with its window's last byte.
    /// </summary>
    internal void SendWindowUpdate()
    {
        Interlocked.Exchange(ref _windowUpdateDue, 0);
        if (Volatile.Read(ref _remoteClosed) || Volatile.Read(ref _reset)
            || (Volatile.Read(ref _localClosed) && Interlocked.Read(ref _receiveCredit) > 0))
        {
            return;
        }

        var delta = Interlocked.Exchange(ref _unacknowledged, 0);
        if (delta > 0)
        {
            Interlocked.Add(ref _receiveCredit, delta);
            _session.Send(new YamuxHeader(YamuxFrameType.WindowUpdate, YamuxFlags.None, Id, (uint)delta));
        }
    }

    /// <summary>Input consumed (or dropped unread): once half the window is, the peer gets it back (the spec's and HashiCorp's rule).</summary>
    private void Consumed(long bytes)
    {
        if (bytes > 0 && Interlocked.Add(ref _unacknowledged, bytes) >= _windowGrant / 2)
        {
            MakeWindowUpdateDue();
        }
    }

    private void MakeWindowUpdateDue()
    {
        if (Interlocked.Exchange(ref _windowUpdateDue, 1) == 0)
        {
            _session.WindowDue(this);
        }
    }

    /// <summary>The input as the application sees it: every byte it consumes is counted towards the next window update.</summary>
    private sealed class WindowedReader(YamuxStream stream, PipeReader inner) : PipeReader
    {
        private ReadOnlySequence<byte> _last;

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            var bytes = _last.Slice(_last.Start, consumed).Length;
            _last = default;
            inner.AdvanceTo(consumed, examined);
            stream.Consumed(bytes);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            var result = await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            _last = result.Buffer;
            return result;
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            _last = result.Buffer;
            return true;
        }
    }
}
