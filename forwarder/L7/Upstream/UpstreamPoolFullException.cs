using System.Net;

namespace Forwarder.L7.Upstream;

/// <summary>An endpoint already has as many connections open as its service allows (http.maxConnections).</summary>
internal sealed class UpstreamPoolFullException(EndPoint endpoint, int limit)
    : Exception($"{endpoint} already has its limit of {limit} open connections.");
