using System.Net;
using Forwarder.Interception;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Forwarder.Transports.Features;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <content>The intercept listener: each connection is served as what its original destination maps to.</content>
internal sealed partial class ListenerHost
{
    /// <summary>
    /// The model (and, for http, the per-request source) an intercepted connection is served
    /// with; null after resetting a connection that has no VIP to go to. Never dialling an
    /// unknown destination is what keeps a connection from looping back to this listener.
    /// </summary>
    private (ListenerModel Model, IListenerModelSource Source)? Intercept(ConnectionContext connection, InterceptTable table)
    {
        var counters = _metrics.Intercept;
        var socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;
        var destination = socket is null ? null : OriginalDestination.Read(socket, table.Config.Mode);
        var target = destination is null ? null : table.Find(destination);
        if (target is null)
        {
            if (destination is null)
            {
                counters.ConnectionNotRedirected();
            }
            else
            {
                counters.ConnectionUnknown();
            }

            if (_acceptLog.TryLog(Model.Config.Name, "#unknown", out var more))
            {
                LogUnknownDestination(_logger, destination?.ToString() ?? "none (not redirected)", connection.RemoteEndPoint, more);
            }

            if (connection.Features.Get<IConnectionResetFeature>() is { } reset)
            {
                reset.Reset();
            }
            else
            {
                connection.Abort(new ConnectionAbortedException("No service has the connection's original destination."));
            }

            return null;
        }

        counters.ConnectionServed();
        return (target, target.Http is null ? this : new InterceptedModelSource(this, destination!, target));
    }

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning, Message = "Intercepted connection from {Client} to {Destination}: no service has that VIP; reset ({Suppressed} more since the last such line)")]
    private static partial void LogUnknownDestination(ILogger logger, string destination, EndPoint? client, long suppressed);
}
