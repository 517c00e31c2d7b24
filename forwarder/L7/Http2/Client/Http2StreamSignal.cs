using System.Threading.Tasks.Sources;

namespace Forwarder.L7.Http2.Client;

/// <summary>
/// A reusable one-shot wake-up for a pooled stream (its response head, its send window), so a
/// request that waits allocates nothing. Armed and fired under the connection's lock discipline:
/// armed once per wait, fired once per arming, and fired outside the lock because the waiter's
/// continuation runs inline.
/// </summary>
internal sealed class Http2StreamSignal : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core;

    public ValueTask Arm()
    {
        _core.Reset();
        return new ValueTask(this, _core.Version);
    }

    public void Set() => _core.SetResult(true);

    public void Fail(Exception error) => _core.SetException(error);

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
