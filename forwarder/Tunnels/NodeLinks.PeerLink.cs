using Forwarder.Configuration;
using Forwarder.Metrics;

namespace Forwarder.Tunnels;

/// <summary>One peer's direct link over one transport: opening it, its pause after failures, and watching it end.</summary>
internal sealed partial class NodeLinks
{
    /// <summary>The direct link to one peer over one transport.</summary>
    private sealed class PeerLink(PeerConfig peer, LinkPath path, NodeLinks owner, Func<CancellationToken, Task<ILinkSession>> dial) : IAsyncDisposable
    {
        private readonly PeerMetrics _metrics = owner._metrics.Peer(peer.Name);
        private readonly Lock _lock = new();
        private readonly List<ILinkSession> _draining = [];
        private ILinkSession? _session;
        private Task<ILinkSession?>? _attempt;
        private Task _watching = Task.CompletedTask;
        private long _failedAt;
        private TimeSpan _backoff;
        private int _failures;
        private bool _degraded;

        /// <summary>The open session, if the link is up.</summary>
        public ILinkSession? Session => Volatile.Read(ref _session) is { Completion.IsCompleted: false } session ? session : null;

        /// <summary>
        /// A QUIC link of this node's that the link the peer opened replaces: it takes no new streams
        /// and closes once those on it are done, or when <see cref="DrainKeepAlives"/> pings' time
        /// has passed (the rest are then reset).
        /// </summary>
        public void Drain()
        {
            if (path == LinkPath.DirectQuic && Volatile.Read(ref _session) is QuicLinkSession { Draining: false } session)
            {
                var deadline = DrainKeepAlives * (owner._source.Initial.Node?.KeepAlive ?? NodeConfig.DefaultKeepAlive);
                LogLinkDraining(owner._logger, peer.Name, path, deadline);
                session.Drain(deadline);
            }
        }

        /// <summary>The link failed or went down since it was last up: streams need not wait for it.</summary>
        public bool Degraded => Volatile.Read(ref _degraded);

        /// <summary>
        /// The attempt to open the link under way, one started now if there is none; null when the
        /// last failure's pause has not run out. The attempt never throws: it yields null when it fails.
        /// A draining session counts as none: it takes no new stream, and the new link replaces it
        /// here while it finishes its own.
        /// </summary>
        public Task<ILinkSession?>? Attempt()
        {
            lock (_lock)
            {
                if (Session is { Draining: false } open)
                {
                    return Task.FromResult<ILinkSession?>(open);
                }

                if (_attempt is { IsCompleted: false } running)
                {
                    return running;
                }

                if (owner._time.GetElapsedTime(_failedAt) < _backoff)
                {
                    return null;
                }

                _attempt = Task.Run(OpenAsync);
                return _attempt;
            }
        }

        public async ValueTask DisposeAsync()
        {
            Task<ILinkSession?>? attempt;
            lock (_lock)
            {
                attempt = _attempt;
            }

            if (attempt is not null)
            {
                await attempt.ConfigureAwait(false);
            }

            ILinkSession[] sessions;
            lock (_lock)
            {
                sessions = _session is { } current ? [.. _draining, current] : [.. _draining];
            }

            await Task.WhenAll(sessions.Select(session => session.DisposeAsync().AsTask())).ConfigureAwait(false);

            await _watching.ConfigureAwait(false);
        }

        private async Task<ILinkSession?> OpenAsync()
        {
            try
            {
                var session = await dial(owner._disposing.Token).ConfigureAwait(false);
                lock (_lock)
                {
                    if (_session is { Completion.IsCompleted: false } replaced)
                    {
                        _draining.Add(replaced); // still finishing its streams: watched, and closed on Dispose
                    }

                    _session = session;
                    _degraded = false;
                    var watching = WatchAsync(session, owner._time.GetTimestamp());
                    _watching = _watching.IsCompleted ? watching : Task.WhenAll(_watching, watching);
                }

                _metrics.LinkUp();
                LogLinkUp(owner._logger, peer.Name, peer.Address, path);
                if (owner._shared.SharedFrom(peer.Name) is not null)
                {
                    // The peer's link came up while this one was opening: the stream that asked for this one finishes on it (or, if it closes first, retries on the peer's).
                    Drain();
                }

                return session;
            }
            catch (Exception) when (owner._disposing.IsCancellationRequested)
            {
                return null;
            }
            catch (Exception ex)
            {
                TimeSpan backoff;
                lock (_lock)
                {
                    backoff = _backoff = LinkDialer.Backoff(_failures++);
                    _failedAt = owner._time.GetTimestamp();
                    _degraded = true;
                }

                _metrics.LinkFailed();
                LogLinkFailed(owner._logger, peer.Name, peer.Address, path, ex.Message, backoff);
                return null;
            }
        }

        /// <summary>Closes what is under a session that ended, so the next stream opens a new one.</summary>
        private async Task WatchAsync(ILinkSession session, long openedAt)
        {
            await session.Completion.ConfigureAwait(false);
            var refused = !session.Draining && owner._time.GetElapsedTime(openedAt) < RefusedWithin;
            TimeSpan backoff;
            lock (_lock)
            {
                // A drained link did not fail: the next stream may wait for a new one, should the peer's
                // go too. One that a newer link replaced says nothing of the link's state now.
                backoff = _backoff;
                if (!_draining.Remove(session))
                {
                    _degraded = !session.Draining;
                    _failures = refused ? _failures + 1 : 0;
                    backoff = _backoff = refused ? LinkDialer.Backoff(_failures - 1) : TimeSpan.Zero;
                    _failedAt = owner._time.GetTimestamp();
                }
            }

            _metrics.LinkDown();
            if (session.OutputCut)
            {
                LogOutputCut(owner._logger, peer.Name, path, LinkDialer.CloseTimeout);
            }

            if (session is QuicLinkSession { StreamsCut: > 0 } cut)
            {
                LogDrainCut(owner._logger, peer.Name, path, cut.StreamsCut, session.EndReason);
            }
            else if (refused)
            {
                _metrics.LinkFailed();
                LogLinkFailed(owner._logger, peer.Name, peer.Address, path, $"closed by the far end right after the handshake ({session.EndReason}); it may have refused this node, and its log says why", backoff);
            }
            else
            {
                LogLinkDown(owner._logger, peer.Name, path, session.EndReason);
            }

            await session.DisposeAsync().ConfigureAwait(false);
        }
    }
}
