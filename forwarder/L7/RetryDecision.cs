using Forwarder.Configuration;
using Forwarder.LoadBalancing;

namespace Forwarder.L7;

/// <summary>How one attempt at an upstream exchange failed.</summary>
internal enum AttemptFailure
{
    /// <summary>No connection was made (refused, unreachable, connect timeout): nothing was sent.</summary>
    Connect,

    /// <summary>A reused keep-alive connection was closed or reset before any byte of a response: the upstream most likely closed it as the request went out.</summary>
    StaleReset,

    /// <summary>The connection was closed or reset after the request went out (or after part of a response came back).</summary>
    Reset,

    /// <summary>The response head did not come within the route's timeout.</summary>
    Timeout,

    /// <summary>A response came back with a status the route may retry on (5xx).</summary>
    Status,
}

/// <summary>What to do after a failed attempt.</summary>
internal enum RetryVerdict
{
    /// <summary>Answer the client with the failure.</summary>
    GiveUp,

    /// <summary>Try another endpoint of the service.</summary>
    RetryElsewhere,

    /// <summary>Send the request again on a new connection to the same endpoint (a stale keep-alive connection, once).</summary>
    ResendStale,
}

/// <summary>
/// The one retry rule every HTTP path follows, whatever engine carries the exchange. A request
/// may go again only when that cannot apply it twice against the client's will (RFC 9110 9.2.2):
/// <list type="bullet">
/// <item>a failed connect sent nothing, so any request goes to the next endpoint, up to the service's <c>connectAttempts</c>;</item>
/// <item>a stale keep-alive connection (<see cref="AttemptFailure.StaleReset"/>) lets an idempotent, still replayable request go once more to the same endpoint;</item>
/// <item>otherwise an idempotent, replayable request is retried elsewhere when the route's <c>retries.on</c> names the failure,
/// at most <c>retries.attempts</c> times, and only while the route's <see cref="RetryBudget"/> has room (one budget slot held per request until <see cref="Release"/>).</item>
/// </list>
/// A mutable struct: keep it in one local per request and pass it by reference; it allocates nothing.
/// </summary>
internal struct RetryDecision(RetryPolicy policy, RetryBudget budget, int connectAttempts, bool idempotent)
{
    private int _attempts;
    private bool _holdsBudget;
    private bool _resentStale;

    /// <summary>Retries taken against the route's policy (connect failovers and stale resends are not counted).</summary>
    public int Retries { get; private set; }

    /// <summary>Decides after a failed attempt; a <see cref="RetryVerdict.RetryElsewhere"/> for a non-connect failure counts as a retry.</summary>
    /// <param name="status">For <see cref="AttemptFailure.Status"/>, the status the upstream answered.</param>
    /// <param name="replayable">Whether the request can still be sent whole: it has no body, or none of it was read yet.</param>
    public RetryVerdict Next(AttemptFailure failure, int status, bool replayable)
    {
        _attempts++;
        if (failure == AttemptFailure.Connect)
        {
            return replayable && _attempts < connectAttempts ? RetryVerdict.RetryElsewhere : RetryVerdict.GiveUp;
        }

        if (!idempotent || !replayable)
        {
            return RetryVerdict.GiveUp;
        }

        if (failure == AttemptFailure.StaleReset && !_resentStale)
        {
            _resentStale = true;
            return RetryVerdict.ResendStale;
        }

        var named = failure switch
        {
            AttemptFailure.StaleReset or AttemptFailure.Reset => (policy.On & RetryOn.Reset) != 0,
            AttemptFailure.Timeout => (policy.On & RetryOn.Timeout) != 0,
            _ => policy.Retries(status),
        };
        if (!named || Retries >= policy.Attempts || !(_holdsBudget || (_holdsBudget = budget.TryStartRetry())))
        {
            return RetryVerdict.GiveUp;
        }

        Retries++;
        return RetryVerdict.RetryElsewhere;
    }

    /// <summary>
    /// Decides after a failed attempt at endpoint <paramref name="index"/> (as <see cref="Next"/>)
    /// and says where the request goes: the same endpoint for a stale resend, the next untried
    /// one for a retry, or -1 to answer the client with the failure.
    /// </summary>
    public int NextEndpoint(AttemptFailure failure, int status, bool replayable, ServiceBalancer balancer, IReadOnlySet<int> tried, int index)
        => Next(failure, status, replayable) switch
        {
            RetryVerdict.GiveUp => -1,
            RetryVerdict.ResendStale => index,
            _ => balancer.NextUntried(tried, index),
        };

    /// <summary>Whether a response with this status would be retried (before <see cref="Next"/> is asked): the caller then need not start copying it.</summary>
    public readonly bool MayRetryStatus(int status) => idempotent && Retries < policy.Attempts && policy.Retries(status);

    /// <summary>Gives back the budget slot the request held, if any. Call once when the request ends.</summary>
    public void Release()
    {
        if (_holdsBudget)
        {
            _holdsBudget = false;
            budget.RetryEnded();
        }
    }
}
