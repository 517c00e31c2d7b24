using System.Net;

namespace Forwarder.Configuration;

/// <summary>How intercepted connections reach the forwarder.</summary>
internal enum InterceptMode
{
    /// <summary>iptables nat REDIRECT; the original destination is read with SO_ORIGINAL_DST.</summary>
    Redirect,

    /// <summary>iptables mangle TPROXY; the accepted socket's local address is the original destination.</summary>
    Tproxy,
}

/// <summary>The <c>intercept</c> section: catch connections to service VIPs on this node and serve them.</summary>
/// <param name="Listener">The listener intercepted connections arrive on (protocol intercept).</param>
/// <param name="ManageRules">The forwarder installs its iptables rules at start and removes them on exit; false when an init container owns them.</param>
/// <param name="Mark">SO_MARK set on every upstream socket; the rules let marked packets pass, so the forwarder's own connections are never caught.</param>
/// <param name="Capture">Destination networks caught on any TCP port; null catches exactly the VIPs (IP and port) known.</param>
internal sealed record InterceptConfig(ListenerConfig Listener, InterceptMode Mode, bool ManageRules, int Mark, IReadOnlyList<IPNetwork>? Capture)
{
    public const string ListenerName = "intercept";
    public const string DefaultListen = "[::]:15001";
    public const int DefaultMark = 0x4657;
}
