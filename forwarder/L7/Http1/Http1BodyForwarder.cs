using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Forwarder.Runtime;

namespace Forwarder.L7.Http1;

/// <summary>How forwarding a body ended.</summary>
internal enum BodyOutcome
{
    /// <summary>The whole body went through.</summary>
    Complete,

    /// <summary>The source closed before the body's end.</summary>
    Truncated,

    /// <summary>The chunked framing was broken; nothing after the break was forwarded.</summary>
    Invalid,

    /// <summary>The body is larger than the listener allows.</summary>
    TooLarge,

    /// <summary>The read was cancelled (the exchange gave up on this body).</summary>
    Cancelled,

    /// <summary>The target stopped reading: its connection is gone.</summary>
    TargetClosed,
}

/// <summary>
/// Streams one message body from a source pipe to a target pipe as it arrives, by the message's
/// framing, never holding more of it than one read: exactly Content-Length bytes, a chunked body
/// validated on the way (a broken one is cut off where it breaks), or everything until the
/// source closes. Each read moved (and each wait for the target to drain) counts as activity on
/// the client connection, against which a stalled body is timed. One instance per direction per connection; not
/// thread-safe.
/// </summary>
internal sealed class Http1BodyForwarder(ClientConnection client, ConnectionTracker tracker)
{
    private readonly ChunkedBodyReader _chunked = new();

    private volatile bool _readingSource;

    /// <summary>
    /// Waiting on the source (rather than on the target to take what was read): a body that
    /// stalls here is the sender's doing, one that stalls in the flush the receiver's.
    /// </summary>
    public bool ReadingSource => _readingSource;

    /// <summary>Body bytes moved by the last call, framing included.</summary>
    public long Forwarded { get; private set; }

    /// <summary>Zeroes <see cref="Forwarded"/> for a message that may have no body to forward.</summary>
    public void ClearCount() => Forwarded = 0;

    /// <param name="length">The body's length when <paramref name="framing"/> is <see cref="Http1BodyFraming.Length"/>.</param>
    /// <param name="limit">The most body data (without chunk framing) allowed through, or null.</param>
    /// <param name="flushLast">Flush the target after the last bytes too; otherwise the caller flushes (and may add more first).</param>
    /// <param name="dechunk">Forward a chunked body's data only, without its framing (for an HTTP/1.0 client, which reads until close).</param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<BodyOutcome> ForwardAsync(PipeReader source, PipeWriter target, Http1BodyFraming framing, long length, long? limit, bool flushLast, bool dechunk = false)
    {
        Forwarded = 0;
        switch (framing)
        {
            case Http1BodyFraming.None:
                return BodyOutcome.Complete;
            case Http1BodyFraming.Length when limit < length:
                return BodyOutcome.TooLarge;
            case Http1BodyFraming.Chunked:
                _chunked.Reset();
                break;
        }

        var remaining = framing == Http1BodyFraming.Length ? length : long.MaxValue;
        while (true)
        {
            ReadResult result;
            _readingSource = true;
            try
            {
                result = await source.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The source reset its connection: the body is cut, whoever reads it is not at fault.
                return BodyOutcome.Truncated;
            }
            finally
            {
                _readingSource = false;
            }

            if (result.IsCanceled)
            {
                return BodyOutcome.Cancelled;
            }

            var buffer = result.Buffer;
            SequencePosition consumed;
            var outcome = (BodyOutcome?)null;
            switch (framing)
            {
                case Http1BodyFraming.Chunked:
                    var status = _chunked.Advance(buffer, out consumed, out _, dechunk ? target : null);
                    if (status == Http1ParseStatus.Error)
                    {
                        outcome = BodyOutcome.Invalid;
                    }
                    else if (limit < _chunked.DeclaredBytes)
                    {
                        outcome = BodyOutcome.TooLarge;
                    }
                    else if (status == Http1ParseStatus.Complete)
                    {
                        outcome = BodyOutcome.Complete;
                    }

                    break;
                case Http1BodyFraming.Length:
                    var take = Math.Min(remaining, buffer.Length);
                    consumed = buffer.GetPosition(take);
                    remaining -= take;
                    outcome = remaining == 0 ? BodyOutcome.Complete : null;
                    break;
                default:
                    consumed = buffer.End;
                    break;
            }

            var body = buffer.Slice(0, consumed);
            if (outcome is null or BodyOutcome.Complete && !body.IsEmpty)
            {
                if (!dechunk || framing != Http1BodyFraming.Chunked)
                {
                    Write(target, body);
                }

                Forwarded += body.Length;
                client.Touch(tracker.Now);
            }

            var ended = outcome is not null || result.IsCompleted;
            source.AdvanceTo(consumed, outcome is null ? buffer.End : consumed);
            if (outcome is { } done && done != BodyOutcome.Complete)
            {
                return done;
            }

            if (!ended || flushLast)
            {
                var flushing = target.FlushAsync();
                var waited = !flushing.IsCompleted;
                var flush = await flushing.ConfigureAwait(false);
                if (flush.IsCompleted)
                {
                    return BodyOutcome.TargetClosed;
                }

                if (waited)
                {
                    // The time the target took to drain is not the source's silence.
                    client.Touch(tracker.Now);
                }
            }

            if (outcome == BodyOutcome.Complete)
            {
                return BodyOutcome.Complete;
            }

            if (result.IsCompleted)
            {
                return framing == Http1BodyFraming.UntilClose ? BodyOutcome.Complete : BodyOutcome.Truncated;
            }
        }
    }

    private static void Write(PipeWriter target, in ReadOnlySequence<byte> body)
    {
        foreach (var segment in body)
        {
            target.Write(segment.Span);
        }
    }
}
