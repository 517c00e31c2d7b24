using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Forwarder.Transports.Tcp.Splicing;

namespace Forwarder.Relay;

/// <content>
/// One rendezvous: the two nodes, their tickets and sockets, and once spliced its activity.
/// </content>
internal sealed partial class RelaySplices
{
    /// <summary>Two nodes' halves of one spliced link, and its bytes counted for both.</summary>
    internal sealed class Rendezvous(RelayNode asker, RelayNode far, string askerTicket, string farTicket, TimeProvider time) : ISpliceObserver
    {
        public RelayNode Asker { get; } = asker;

        public RelayNode Far { get; } = far;

        public string AskerTicket { get; } = askerTicket;

        public string FarTicket { get; } = farTicket;

        public Socket? AskerSocket { get; set; }

        public Socket? FarSocket { get; set; }

        /// <summary>Both halves came; the splice owns the sockets from then on.</summary>
        public bool Spliced { get; set; }

        /// <summary>Expired or cancelled before both came.</summary>
        public bool Ended { get; set; }

        public ITimer? Timer { get; set; }

        /// <summary>
        /// The running splice, once there is one. The sweep reads it on another thread, so it is
        /// published as one reference: a Nullable struct can be read torn (HasValue set, the
        /// struct's reference not yet), and using that would throw in the sweep's timer.
        /// </summary>
        public SplicedConnection? Splice => Volatile.Read(ref _splice)?.Value;

        /// <summary>The splice, once there is one.</summary>
        public Task Done { get; set; } = Task.CompletedTask;

        /// <summary>The relay's clock's timestamp when a byte last crossed the splice (or it started).</summary>
        public long LastActive => Volatile.Read(ref _lastActive);

        /// <summary>The sweep closed it for a timeout: it is not closed twice.</summary>
        public bool TimedOut { get; set; }

        private StrongBox<SplicedConnection>? _splice;
        private long _lastActive;
        private long _halfClosedSince;

        public void Started(SplicedConnection splice) => Volatile.Write(ref _splice, new StrongBox<SplicedConnection>(splice));

        public void Touch() => Volatile.Write(ref _lastActive, time.GetTimestamp());

        /// <summary>How long the splice has been seen half-closed by the sweep (on its thread only), zero when it is not.</summary>
        public TimeSpan HalfClosedFor(bool halfClosed, long now)
        {
            if (!halfClosed)
            {
                _halfClosedSince = 0;
                return TimeSpan.Zero;
            }

            if (_halfClosedSince == 0)
            {
                _halfClosedSince = now;
            }

            return time.GetElapsedTime(_halfClosedSince, now);
        }

        void ISpliceObserver.Forwarded(bool toUpstream, int bytes)
        {
            Touch();
            var (from, to) = toUpstream ? (Asker, Far) : (Far, Asker);
            from.AddFrom(bytes);
            to.AddTo(bytes);
        }
    }
}
