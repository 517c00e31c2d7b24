using System.Net;
using Forwarder.LoadBalancing.Health;

namespace Forwarder.Configuration;

/// <summary>The whole configuration as the user wrote it, validated; replaced whole on reload.</summary>
/// <param name="Digest">A 128-bit hash of the text it was read from, to tell a real edit from a touch.</param>
/// <param name="ShutdownDelay">How long listeners go on accepting after SIGTERM, with /readyz already 503, before the drain.</param>
/// <param name="Limits">Process-wide limits; null when the section is absent (all derived).</param>
/// <param name="Cluster">Where services are discovered besides the file; null for file-only mode.</param>
/// <param name="Dns">The built-in service DNS server; null for none.</param>
/// <param name="Locality">Where this node runs, and the locality discovered services get; null only in configs built by hand.</param>
/// <param name="Intercept">Transparent interception of traffic to service VIPs; null when off.</param>
internal sealed record ForwarderConfig(
    string Source,
    string Digest,
    AdminConfig? Admin,
    TimeSpan DrainTimeout,
    TcpConfig Tcp,
    IReadOnlyList<ListenerConfig> Listeners,
    IReadOnlyDictionary<string, ServiceConfig> Services,
    NodeConfig? Node = null,
    TimeSpan ShutdownDelay = default,
    LimitsConfig? Limits = null,
    ClusterConfig? Cluster = null,
    Forwarder.Dns.DnsConfig? Dns = null,
    LocalityConfig? Locality = null,
    InterceptConfig? Intercept = null);

/// <param name="MaxConnections">Proxied connections open at once across all listeners; null derives it from RLIMIT_NOFILE.</param>
internal sealed record LimitsConfig(int? MaxConnections);

internal sealed record AdminConfig(string Listen, IPEndPoint EndPoint);

internal enum ListenerProtocol
{
    /// <summary>Forward the byte stream to a service's endpoint.</summary>
    Tcp,

    /// <summary>Answer with the bytes received: a built-in backend for smoke tests and benchmarks.</summary>
    Echo,

    /// <summary>Proxy HTTP requests, routing each to a service by host, path, method and headers.</summary>
    Http,

    /// <summary>Forward datagrams to a service's endpoint, one session per client address.</summary>
    Udp,

    /// <summary>Take connections iptables redirected here and serve each as the service of its original destination.</summary>
    Intercept,
}

/// <param name="Http">The routes and HTTP settings of an http listener; null for the others.</param>
/// <param name="Tls">TLS termination (http listeners); null for plain text.</param>
/// <param name="Udp">The session settings of a udp listener; null for the others.</param>
/// <param name="Vips">Service addresses (IP:PORT) whose intercepted connections this http listener's routes serve.</param>
internal sealed record ListenerConfig(string Name, string Listen, IPEndPoint EndPoint, ListenerProtocol Protocol, string? Service, int MaxConnections, HttpListenerConfig? Http, TlsConfig? Tls = null, UdpListenerConfig? Udp = null, IReadOnlyList<IPEndPoint>? Vips = null)
{
    /// <summary>
    /// Listeners are matched across reloads by what they bind; port 0 binds a fresh port each
    /// time, so those are told apart by name. A udp port is another port than the tcp one.
    /// </summary>
    public string BindingKey => (Protocol == ListenerProtocol.Udp ? "udp:" : string.Empty) + (EndPoint.Port == 0 ? $"{Listen}#{Name}" : Listen);
}

/// <param name="IdleTimeout">A session with no datagram either way for this long ends, and its upstream socket closes.</param>
/// <param name="MaxSessions">Client addresses served at once; datagrams from further ones are dropped and counted.</param>
internal sealed record UdpListenerConfig(TimeSpan IdleTimeout, int MaxSessions);

/// <param name="HealthCheck">Active checks; none when null.</param>
/// <param name="OutlierDetection">Passive ejection of endpoints failing on real traffic; none when null.</param>
/// <param name="Export">Whether peer nodes may reach this service's endpoints on this node over node links (and relays).</param>
/// <param name="Origin">Where the service came from: the file, or Kubernetes discovery.</param>
/// <param name="Vips">The virtual addresses (ClusterIP:port) intercepted connections to which this service serves.</param>
/// <param name="AppProtocol">The application protocol, as a Kubernetes Service port's appProtocol: http, h2c or grpc make intercepted connections L7.</param>
/// <param name="UdpVips">The virtual addresses (ClusterIP:port) intercepted datagrams to which this service serves (<c>/udp</c> in the file).</param>
internal sealed record ServiceConfig(
    string Name,
    LbConfig Lb,
    HealthCheckOptions? HealthCheck,
    OutlierDetectionOptions? OutlierDetection,
    TimeSpan ConnectTimeout,
    int ConnectAttempts,
    TimeSpan IdleTimeout,
    UpstreamHttpConfig Http,
    IReadOnlyList<EndpointConfig> Endpoints,
    bool Export = false,
    ServiceOrigin Origin = ServiceOrigin.File,
    IReadOnlyList<IPEndPoint>? Vips = null,
    string? AppProtocol = null,
    IReadOnlyList<IPEndPoint>? UdpVips = null);

internal enum ServiceOrigin
{
    File,
    Kubernetes,
}

/// <summary>How http listeners talk to a service's endpoints: keep-alive pools per endpoint.</summary>
/// <param name="MaxIdleConnections">Idle keep-alive connections kept per endpoint; more are closed when returned.</param>
/// <param name="KeepAliveTimeout">An idle connection older than this is closed rather than reused (keep it below the upstream's own).</param>
/// <param name="Version">The HTTP version requests from HTTP/2 clients are forwarded in (1.1, or 2 with prior knowledge: gRPC needs it); HTTP/1.1 clients' requests always go as HTTP/1.1.</param>
/// <param name="MaxConnections">Connections open at once per endpoint (a circuit breaker): past it the next endpoint is tried, then 503; 0 for no limit.</param>
internal sealed record UpstreamHttpConfig(int MaxIdleConnections, TimeSpan KeepAliveTimeout, Version Version, int MaxConnections = 0)
{
    public static UpstreamHttpConfig Default { get; } = new(1024, TimeSpan.FromSeconds(30), System.Net.HttpVersion.Version11);
}

/// <param name="EndPoint">Where to connect: the address, or a <see cref="NodeEndPoint"/> when it lives on another node.</param>
/// <param name="Node">The node hosting the endpoint (this node's name when it is local and a node section exists; the EndpointSlice's nodeName when discovered).</param>
/// <param name="Zone">The zone the endpoint runs in, for locality-aware balancing.</param>
internal sealed record EndpointConfig(string Address, EndPoint EndPoint, int Weight, string? Node = null, string? Zone = null);

/// <summary>What moves the bytes of a tcp listener's connections.</summary>
internal enum TcpEngine
{
    /// <summary>
    /// Edge-triggered epoll threads that read and send the two sockets directly, HAProxy-style
    /// (Linux, plain TCP on both sides; otherwise the pipes engine serves the connection).
    /// </summary>
    Epoll,

    /// <summary>A pump per direction over each connection's pipes on .NET's socket engine; works with every transport.</summary>
    Pipes,
}

internal sealed record TcpConfig(
    TcpEngine Engine,
    bool NoDelay,
    int? ReceiveBufferSize,
    int? SendBufferSize,
    int MaxBufferedBytes,
    int BlockSize,
    bool DirectSend,
    bool WaitForData,
    bool InlineCompletions,
    int? IoThreads);
