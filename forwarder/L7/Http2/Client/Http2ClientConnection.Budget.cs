using System.Buffers;
using Forwarder.L7.Http2.Codec;

namespace Forwarder.L7.Http2.Client;

/// <summary>Stream credit coming back to the server as bodies are consumed, within the client connection's <see cref="Http2ResponseBudget"/> when the stream has one.</summary>
internal sealed partial class Http2ClientConnection
{
    /// <summary>Ties the stream of the lease <paramref name="generation"/> to <paramref name="budget"/>: its top-ups past the opening window are taken from it from now on.</summary>
    internal void Bind(Http2ClientExchange stream, int generation, Http2ResponseBudget budget)
    {
        lock (_gate)
        {
            if (stream.Generation != generation || stream.Budget is not null)
            {
                return;
            }

            // Nothing consumed yet, so the capacity is the opening window (unless padding was
            // credited back already): what it holds past that is taken whatever the room.
            stream.Budget = budget;
            stream.BudgetHeld = Math.Max(0, stream.Credit.Capacity - _options.InitialStreamWindow);
            budget.Hold(stream.BudgetHeld);
            budget.AddBuffered(stream.Credit.Unread);
        }
    }

    /// <summary>The lease ended: whatever the stream held of its budget, credit and unread body, goes back (the body will not be read).</summary>
    internal void Unbind(Http2ClientExchange stream)
    {
        bool wake;
        Http2ResponseBudget? budget;
        lock (_gate)
        {
            budget = stream.Budget;
            if (budget is null)
            {
                return;
            }

            budget.AddBuffered(-stream.Credit.Unread);
            wake = budget.Release(stream.BudgetHeld);
            if (stream.Starved)
            {
                budget.Forget(stream);
            }

            stream.Budget = null;
            stream.BudgetHeld = 0;
            stream.Starved = false;
        }

        if (wake)
        {
            budget.Wake();
        }
    }

    /// <summary>Outside the lock: a stream its budget refused a top-up has room again (<see cref="Http2ResponseBudget.Wake"/>).</summary>
    internal void Resume(Http2ClientExchange stream, int generation)
    {
        lock (_gate)
        {
            if (stream.Generation != generation || !stream.Starved)
            {
                return;
            }

            stream.Starved = false;
            if (_closed || stream.Closed || stream.RemoteEnded)
            {
                return;
            }

            // An idle stream (nothing unread, credit left) is not topped up: it would soak up the
            // room others wait for. Its next consumption asks again.
            if (stream.Credit.Unread == 0 && stream.Credit.Available >= _options.InitialStreamWindow / 4)
            {
                return;
            }

            TopUp(stream, Out, force: true);
        }

        Flush();
    }

    /// <summary>
    /// Under the lock: <paramref name="length"/> body bytes of the stream were consumed (or were
    /// padding): the stream's budget gets back what it no longer holds, and the stream is topped
    /// up if due. True when its budget should <see cref="Http2ResponseBudget.Wake"/> waiting
    /// streams once the lock is let go.
    /// </summary>
    private bool ConsumeCredit(Http2ClientExchange stream, int length, IBufferWriter<byte> output)
    {
        stream.Credit.Consume(length);
        var wake = false;
        if (stream.Budget is { } budget)
        {
            budget.AddBuffered(-length);
            var held = Math.Max(0, stream.Credit.Capacity - _options.InitialStreamWindow);
            wake = budget.Release(stream.BudgetHeld - held);
            stream.BudgetHeld = held;
        }

        if (!stream.Closed && !stream.RemoteEnded)
        {
            TopUp(stream, output, force: false);
        }

        return wake;
    }

    /// <summary>
    /// Under the lock: credits the stream back up to its full window, when due (or whenever
    /// <paramref name="force"/>). Past the opening window the credit comes from the stream's
    /// budget, which may give less or none (and then tops it up later).
    /// </summary>
    private void TopUp(Http2ClientExchange stream, IBufferWriter<byte> output, bool force)
    {
        var due = force ? Math.Max(0, _options.StreamWindow - stream.Credit.Capacity) : stream.Credit.Due(_options.StreamWindow);
        if (due == 0)
        {
            return;
        }

        if (stream.Budget is { } budget)
        {
            // Up to the opening window is free: a stream the client reads always moves.
            var free = Math.Min(due, Math.Max(0, _options.InitialStreamWindow - stream.Credit.Capacity));
            var granted = due > free ? budget.Take(due - free, stream) : 0;

            // Refused (the budget is full): the free part alone, with the same hysteresis against
            // the opening window that Due applies to the full one, or a starved stream would send
            // a WINDOW_UPDATE per consumed read (one per small gRPC message).
            if (granted == 0 && free < _options.InitialStreamWindow / 2 && stream.Credit.Available >= _options.InitialStreamWindow / 4)
            {
                return;
            }

            stream.BudgetHeld += granted;
            due = free + granted;
            if (due == 0)
            {
                return;
            }
        }

        stream.Credit.Credit(due);
        Http2FrameWriter.WriteWindowUpdate(output, stream.Id, (int)due);
    }
}
