using Forwarder.Cluster;

namespace Forwarder.Dns;

/// <summary>
/// The zone of the current cluster state. Discovery swaps the state in the store; the first query
/// after a swap builds the new zone (once, off every other query's path) and publishes it whole.
/// </summary>
internal sealed class ClusterZoneSource(ClusterStateStore store, string domain)
{
    private readonly Lock _building = new();
    private ClusterZone _zone = ClusterZone.Build(ClusterState.Empty, domain);

    public ClusterZone Current
    {
        get
        {
            var zone = Volatile.Read(ref _zone);
            var state = store.State;
            if (ReferenceEquals(zone.State, state))
            {
                return zone;
            }

            lock (_building)
            {
                zone = Volatile.Read(ref _zone);
                if (!ReferenceEquals(zone.State, state))
                {
                    zone = ClusterZone.Build(state, domain);
                    Volatile.Write(ref _zone, zone);
                }

                return zone;
            }
        }
    }
}
