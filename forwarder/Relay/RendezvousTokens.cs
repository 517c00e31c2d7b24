using System.Net;
using System.Runtime.InteropServices;

namespace Forwarder.Relay;

/// <summary>
/// Tokens the relay issued to nodes over their authenticated sessions, each with the address it
/// then came from over UDP (TCP) after the node's NAT. Only an issued token is recorded, and only
/// the first address it comes from: a token nobody was issued, or one raced or spoofed from
/// elsewhere, binds nothing (counted by reason). Only the node a token was issued to learns the
/// address, once. The UDP rendezvous and the TCP one keep a table each, so an address seen over
/// one protocol never stands for the other.
/// </summary>
internal sealed class RendezvousTokens(TimeProvider time)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(30);

    /// <summary>Tokens one node may hold unanswered at once for its own punches: a punch takes one or two, for seconds.</summary>
    public const int MaxPerNode = 8;

    /// <summary>
    /// Tokens one node may hold unanswered at once as the far end of other nodes' introductions,
    /// at most <see cref="MaxPerAsker"/> of them for one asker. Kept apart from its own places so
    /// that however many introductions others ask for, and however slowly it answers them (each
    /// holds its place until its answer or the relay's 30 s timeout), it still punches itself;
    /// and one asker cannot take the places the far node answers its other peers with.
    /// </summary>
    public const int MaxIntroducedPerNode = 8;

    /// <summary>A real far node answers at most two TCP introductions of one peer at once: the relay issues no more for them.</summary>
    public const int MaxPerAsker = 2;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Issued> _issued = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Places> _places = new(StringComparer.Ordinal);
    private long _sweptAt;
    private long _refusedUnknown;
    private long _refusedRebound;

    /// <summary>Tokens that came without the relay having issued them (or after they expired or answered).</summary>
    public long RefusedUnknown => Volatile.Read(ref _refusedUnknown);

    /// <summary>Issued tokens that came again from an address other than the first one.</summary>
    public long RefusedRebound => Volatile.Read(ref _refusedRebound);

    /// <summary>Tokens issued and not yet answered or expired.</summary>
    public int Outstanding
    {
        get
        {
            lock (_lock)
            {
                return _places.Values.Sum(p => p.Own + p.Introduced);
            }
        }
    }

    /// <summary>Issued tokens whose punch connection came in: their hold's deadlines are already running.</summary>
    public int Noted
    {
        get
        {
            lock (_lock)
            {
                return _issued.Values.Count(issued => issued.Address is not null);
            }
        }
    }

    /// <summary>
    /// A fresh token for <paramref name="node"/> to send from the port it will punch from, for its
    /// own punch or, with <paramref name="asker"/>, as the far end of that node's introduction;
    /// null when that takes a place <paramref name="node"/> has none of left.
    /// </summary>
    public string? Issue(string node, string? asker = null)
    {
        var (token, _) = RelayRendezvous.NewToken([]);
        var now = time.GetTimestamp();
        lock (_lock)
        {
            if (Full(node, asker) || time.GetElapsedTime(_sweptAt, now) >= TimeSpan.FromSeconds(1))
            {
                Sweep(now);
            }

            if (Full(node, asker))
            {
                return null;
            }

            if (!_places.TryGetValue(node, out var places))
            {
                _places[node] = places = new Places();
            }

            places.Take(asker);
            _issued[token] = new Issued(node, asker, now);
            return token;
        }
    }

    /// <summary>
    /// Records where an issued token came from: true when it is the first address (or that one
    /// again, as UDP tokens are sent more than once); false, counted, for a token not issued or
    /// one already seen from elsewhere. <paramref name="named"/>, if given with the first address,
    /// completes when the token's node asks for it.
    /// </summary>
    public bool Note(string token, IPEndPoint seen, TaskCompletionSource? named = null)
    {
        lock (_lock)
        {
            if (!_issued.TryGetValue(token, out var issued) || Expired(issued.At, time.GetTimestamp()))
            {
                Interlocked.Increment(ref _refusedUnknown);
                return false;
            }

            if (issued.Address is { } first)
            {
                if (first.Equals(seen))
                {
                    return true;
                }

                Interlocked.Increment(ref _refusedRebound);
                return false;
            }

            issued.Address = seen;
            issued.Named = named;
            issued.Seen.TrySetResult(seen);
            return true;
        }
    }

    /// <summary>
    /// Where <paramref name="token"/> came from, waiting up to <paramref name="timeout"/>; null if
    /// it was not issued to <paramref name="node"/>, never came, expired, or answered already.
    /// </summary>
    public async Task<IPEndPoint?> SeenAsync(string token, string node, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Issued? issued;
        lock (_lock)
        {
            if (!_issued.TryGetValue(token, out issued) || issued.Node != node || issued.Answered || Expired(issued.At, time.GetTimestamp()))
            {
                return null;
            }

            issued.Answered = true;
        }

        try
        {
            var seen = await issued.Seen.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                issued.Named?.TrySetResult();
            }

            return seen;
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            lock (_lock)
            {
                // No longer outstanding; kept till it expires, so its late copies count as neither unknown nor rebound.
                Release(issued);
            }
        }
    }

    /// <summary>Gives up <paramref name="token"/> if nobody asked for it yet: it stops counting against its node's quota, and binds nothing from now on.</summary>
    public void Withdraw(string token)
    {
        lock (_lock)
        {
            if (_issued.TryGetValue(token, out var issued) && !issued.Answered)
            {
                _issued.Remove(token);
                Release(issued);
            }
        }
    }

    /// <summary>Forgets expired tokens (under the lock).</summary>
    private void Sweep(long now)
    {
        _sweptAt = now;
        foreach (var (token, issued) in _issued)
        {
            if (Expired(issued.At, now))
            {
                _issued.Remove(token);
                if (!issued.Answered)
                {
                    Release(issued);
                }
            }
        }
    }

    /// <summary>Whether <paramref name="node"/> has no place left for a token of <paramref name="asker"/>'s (its own: null).</summary>
    private bool Full(string node, string? asker) => _places.TryGetValue(node, out var places) && places.Full(asker);

    private void Release(Issued issued)
    {
        var places = _places[issued.Node];
        if (places.Free(issued.Asker))
        {
            _places.Remove(issued.Node);
        }
    }

    private bool Expired(long at, long now) => time.GetElapsedTime(at, now) > Lifetime;

    private sealed class Issued(string node, string? asker, long at)
    {
        public string Node { get; } = node;

        /// <summary>The node whose introduction this far node's token is for; null for the node's own.</summary>
        public string? Asker { get; } = asker;

        public long At { get; } = at;

        public TaskCompletionSource<IPEndPoint> Seen { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IPEndPoint? Address { get; set; }

        public TaskCompletionSource? Named { get; set; }

        public bool Answered { get; set; }
    }

    /// <summary>One node's outstanding tokens: its own, and those it holds as the far end, by asker.</summary>
    private sealed class Places
    {
        private readonly Dictionary<string, int> _byAsker = new(StringComparer.Ordinal);

        public int Own { get; private set; }

        public int Introduced { get; private set; }

        public bool Full(string? asker) => asker is null
            ? Own >= MaxPerNode
            : Introduced >= MaxIntroducedPerNode || _byAsker.GetValueOrDefault(asker) >= MaxPerAsker;

        public void Take(string? asker)
        {
            if (asker is null)
            {
                Own++;
                return;
            }

            Introduced++;
            _byAsker[asker] = _byAsker.GetValueOrDefault(asker) + 1;
        }

        /// <summary>Frees a place; true when none is taken any more.</summary>
        public bool Free(string? asker)
        {
            if (asker is null)
            {
                Own--;
            }
            else
            {
                Introduced--;
                if (--CollectionsMarshal.GetValueRefOrNullRef(_byAsker, asker) == 0)
                {
                    _byAsker.Remove(asker);
                }
            }

            return Own == 0 && Introduced == 0;
        }
    }
}
