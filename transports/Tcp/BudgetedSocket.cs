using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// A dialled socket counted in a <see cref="ConnectionBudget"/> until it is closed, whoever closes
/// it: the connection, the splicer that took it, or the finalizer.
/// </summary>
internal sealed class BudgetedSocket : Socket
{
    private readonly ConnectionBudget _budget;

    /// <summary>1 once the descriptor exists: a socket() that failed is released by its caller, not by the finalizer.</summary>
    private int _counted;

    public BudgetedSocket(ConnectionBudget budget, AddressFamily family, SocketType type, ProtocolType protocol)
        : base(family, type, protocol)
    {
        _budget = budget;
        _counted = 1;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (Interlocked.Exchange(ref _counted, 0) == 1)
        {
            _budget.Release();
        }
    }
}
