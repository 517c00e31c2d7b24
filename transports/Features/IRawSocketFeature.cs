using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;

namespace Forwarder.Transports.Features;

/// <summary>
/// Lets a caller take a connection's socket and drive it directly (the L4 splicer does), as long
/// as nothing has used the connection's pipes yet. Afterwards the connection leaves the socket
/// alone: the taker owns it and disposes it.
/// </summary>
public interface IRawSocketFeature
{
    bool CanTakeSocket { get; }

    bool TryTakeSocket([NotNullWhen(true)] out Socket? socket);
}
