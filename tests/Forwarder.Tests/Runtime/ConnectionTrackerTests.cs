using Forwarder.Runtime;

namespace Forwarder.Tests.Runtime;

public sealed class ConnectionTrackerTests
{
    [Fact]
    public void Tick_ADeadlineTwoSecondsOut_IsCheckedWithinATenthOfASecondOfIt()
    {
        var time = new ManualTime();
        using var tracker = new ConnectionTracker(time);
        var connection = new DeadlineProbe(tracker.DeadlineAfter(TimeSpan.FromSeconds(2)));
        tracker.Add(connection);

        // The tracker's timer is the only clock it has: run its ticks as they would come.
        Assert.True(time.Period <= TimeSpan.FromMilliseconds(100), $"tick of {time.Period}");
        while (connection.FiredAt is null)
        {
            time.Advance(time.Period);
        }

        Assert.InRange(connection.FiredAt.Value, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.1));
    }

    /// <summary>A clock that moves only when told, and hands its one timer's callback to the test.</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;
        private TimerCallback? _callback;
        private object? _state;

        public TimeSpan Period { get; private set; }

        public TimeSpan Elapsed => TimeSpan.FromTicks(_ticks);

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            (_callback, _state, Period) = (callback, state, period);
            return new NoTimer();
        }

        public void Advance(TimeSpan by)
        {
            _ticks += by.Ticks;
            _callback!(_state);
        }

        private sealed class NoTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    private sealed class DeadlineProbe(long deadline) : ITrackedConnection
    {
        public TimeSpan? FiredAt { get; private set; }

        public long LastActivity => 0;

        public TimeSpan IdleTimeout => TimeSpan.Zero;

        public void Abort(string reason)
        {
        }

        public void CheckDeadline(long now)
        {
            if (FiredAt is null && now >= deadline)
            {
                FiredAt = TimeSpan.FromTicks(now);
            }
        }
    }
}
