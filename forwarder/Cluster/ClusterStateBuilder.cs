using System.Net;
using Forwarder.Configuration;

namespace Forwarder.Cluster;

/// <summary>Joins Services with their EndpointSlices (by the kubernetes.io/service-name label and port name) into a <see cref="ClusterState"/>.</summary>
internal static class ClusterStateBuilder
{
    private const string ServiceNameLabel = "kubernetes.io/service-name";

    public static ClusterState Build(IEnumerable<KubeService> services, IEnumerable<EndpointSlice> slices)
    {
        var slicesByService = slices
            .Where(s => s.Metadata?.Namespace is not null && s.Metadata.Labels?.GetValueOrDefault(ServiceNameLabel) is not null)
            .ToLookup(s => (s.Metadata!.Namespace!, s.Metadata.Labels![ServiceNameLabel]));
        List<ClusterService> result = [];
        foreach (var service in services)
        {
            if (service.Metadata is not { Name: { } name, Namespace: { } ns } || service.Spec is not { } spec || spec.Type == "ExternalName")
            {
                continue;
            }

            var clusterIps = spec.ClusterIPs ?? (spec.ClusterIP is { } ip ? [ip] : []);
            foreach (var port in spec.Ports ?? [])
            {
                var protocol = port.Protocol ?? "TCP";
                if (protocol is not ("TCP" or "UDP") || port.Port is <= 0 or > 65535)
                {
                    continue;
                }

                var endpoints = Endpoints(slicesByService[(ns, name)], port.Name ?? string.Empty, protocol);
                result.Add(new ClusterService(ClusterServiceName.Of(ns, name, port.Port, protocol), ns, name, [.. clusterIps.Where(c => c != "None")], port.Port, protocol, port.AppProtocol, endpoints, port.Name));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return new ClusterState(result);
    }

    private static List<ClusterEndpoint> Endpoints(IEnumerable<EndpointSlice> slices, string portName, string protocol)
    {
        List<ClusterEndpoint> endpoints = [];
        foreach (var slice in slices)
        {
            if (slice.AddressType is not ("IPv4" or "IPv6")
                || slice.Ports?.FirstOrDefault(p => (p.Name ?? string.Empty) == portName && (p.Protocol ?? "TCP") == protocol) is not { Port: { } port and > 0 and <= 65535 })
            {
                continue;
            }

            foreach (var endpoint in slice.Endpoints ?? [])
            {
                // Only the first address counts: the API says consumers should use it and may ignore the rest.
                if (endpoint.Addresses is not [{ } first, ..] || !IPAddress.TryParse(first, out var ip))
                {
                    continue;
                }

                var address = new IPEndPoint(ip, port).ToString();
                if (endpoints.Any(e => e.Address == address))
                {
                    continue;
                }

                var ready = endpoint.Conditions?.Ready ?? true;
                endpoints.Add(new ClusterEndpoint(address, endpoint.NodeName, endpoint.Zone, ready, endpoint.Conditions?.Serving ?? ready, endpoint.Conditions?.Terminating ?? false));
            }
        }

        endpoints.Sort((a, b) => string.CompareOrdinal(a.Address, b.Address));
        return endpoints;
    }
}
