using System.Net.Sockets;

namespace Forwarder.Transports.Tcp;

/// <summary>
/// A dialled socket counted in a <see cref="ConnectionBudget"/> until it is closed, whoever closes
/// it: the connection or the finalizer; or until a splice that took its connection over closes
/// its own descriptor (<see cref="TakeBudget"/>).
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

    /// <summary>
    /// The budget a socket is counted in, which the caller now releases (after closing a descriptor
    /// it took over), or null: the socket's own close then releases nothing.
    /// </summary>
    public static ConnectionBudget? TakeBudget(Socket socket)
        => socket is BudgetedSocket budgeted && Interlocked.Exchange(ref budgeted._counted, 0) == 1 ? budgeted._budget : null;

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (Interlocked.Exchange(ref _counted, 0) == 1)
        {
            _budget.Release();
        }
    }
}
