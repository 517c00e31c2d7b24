using Forwarder.Metrics;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// What the upstream streams serving one client connection may make the proxy buffer of their
/// responses, beyond the window each stream opens with (review finding L12): a client that opens
/// many streams and reads none of them pins at most this plus one opening window per stream
/// (64 KiB), however large the streams' full windows, plus what already moved into each stream's
/// client-facing response buffer (Http2ServerOptions.ResponseBufferSize, 64 KiB): 128 KiB per stream. A stream's top-ups past its opening window are taken
/// from here and given back as its body is consumed (when the client drains) or its lease ends;
/// streams refused a top-up wait in a queue and are topped up once room comes back. Top-ups up to
/// the opening window are never refused, so a stream the client reads always moves.
/// </summary>
/// <remarks>
/// Streams of one client connection sit on several upstream connections: this is called under
/// their locks (it takes only its own inside them) and <see cref="Wake"/> outside all of them.
/// </remarks>
internal sealed class Http2ResponseBudget(long limit, ListenerMetrics metrics)
{
    /// <summary>A top-up smaller than this is not worth a WINDOW_UPDATE: the stream waits for more room instead.</summary>
    private const int MinTopUp = 16 * 1024;

    private readonly Lock _lock = new();
    /// <summary>Streams refused a top-up, oldest first, each linked through its own <see cref="Http2ClientExchange.StarvedEntry"/>.</summary>
    private readonly LinkedList<(Http2ClientExchange Stream, int Generation)> _starved = new();

    /// <summary>Credit held past the streams' opening windows (what the limit bounds), under <see cref="_lock"/>.</summary>
    private long _held;

    /// <summary>Under the stream's connection lock: response bytes arrived (positive) or were consumed or dropped (negative), for the listener's gauge.</summary>
    public void AddBuffered(long delta) => metrics.AddHttp2ResponseBuffered(delta);

    /// <summary>
    /// Under the stream's connection lock: takes up to <paramref name="wanted"/> bytes of credit;
    /// less, or none when little is left, in which case the stream is queued for <see cref="Wake"/>.
    /// </summary>
    public long Take(long wanted, Http2ClientExchange stream)
    {
        lock (_lock)
        {
            var granted = Math.Min(wanted, limit - _held);
            if (granted < Math.Min(wanted, MinTopUp))
            {
                granted = 0;
            }

            if (granted > 0)
            {
                // A starved stream takes none: no atomic add on the shared gauge for it.
                _held += granted;
                metrics.AddHttp2ResponseBudgetHeld(granted);
            }
            if (granted < wanted && !stream.Starved)
            {
                stream.Starved = true;
                stream.StarvedEntry.Value = (stream, stream.Generation);
                _starved.AddLast(stream.StarvedEntry);
                metrics.Http2ResponseBudgetExhausted();
            }

            return granted;
        }
    }

    /// <summary>Under the stream's connection lock: credit a stream holds already, taken whatever the room.</summary>
    public void Hold(long amount)
    {
        if (amount == 0)
        {
            return;
        }

        lock (_lock)
        {
            _held += amount;
            metrics.AddHttp2ResponseBudgetHeld(amount);
        }
    }

    /// <summary>Under the stream's connection lock: credit the stream no longer holds; true when queued streams can be topped up now (<see cref="Wake"/>, outside the lock).</summary>
    public bool Release(long amount)
    {
        if (amount == 0)
        {
            return false;
        }

        lock (_lock)
        {
            _held -= amount;
            metrics.AddHttp2ResponseBudgetHeld(-amount);
            return _starved.Count > 0 && limit - _held >= MinTopUp;
        }
    }

    /// <summary>Under the stream's connection lock: its lease ended while it was queued; it leaves the queue (which would otherwise keep it, and its upstream connection, until room comes back).</summary>
    public void Forget(Http2ClientExchange stream)
    {
        lock (_lock)
        {
            if (stream.StarvedEntry.List == _starved)
            {
                _starved.Remove(stream.StarvedEntry);
            }
        }
    }

    /// <summary>Outside every connection lock: tops up the queued streams, oldest first, while there is room (each is queued again if it still wants more).</summary>
    public void Wake()
    {
        int count;
        lock (_lock)
        {
            count = _starved.Count;
        }

        for (; count > 0; count--)
        {
            (Http2ClientExchange Stream, int Generation) next;
            lock (_lock)
            {
                if (limit - _held < MinTopUp || _starved.First is not { } first)
                {
                    return;
                }

                next = first.Value;
                _starved.RemoveFirst();
            }

            next.Stream.Connection.Resume(next.Stream, next.Generation);
        }
    }
}
