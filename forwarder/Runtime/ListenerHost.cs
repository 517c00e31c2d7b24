using System.Net;
using Forwarder.Configuration;
using Forwarder.Echo;
using Forwarder.L4;
using Forwarder.L7;
using Forwarder.Metrics;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Forwarder.Runtime;

/// <summary>
/// One bound listener: accepts connections, enforces the connection limits (its own, and the
/// process-wide budget, which it waits for before each accept) and hands each connection to the
/// handler for its protocol. Stopping unbinds the socket; connections already
/// accepted run on until they finish or shutdown's drain deadline aborts them.
/// </summary>
internal sealed partial class ListenerHost : IListenerModelSource, IConnectionEnd
{
    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly IConnectionListener _listener;
    private readonly TcpProxyHandler _tcpHandler;
    private readonly Http1ProxyHandler _httpHandler;
    private readonly EchoHandler _echoHandler;
    private readonly ConnectionTracker _tracker;
    private readonly ConnectionBudget _budget;
    private readonly TypeInitFaults _faults;
    private readonly ForwarderMetrics _metrics;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly LogThrottle _acceptLog = new();
    private readonly CancellationTokenSource _unbinding = new();
    private readonly Action _logLimitReached;
    private ListenerModel _model;
    private Task _accepting = Task.CompletedTask;
    private int _active;

    public ListenerHost(IConnectionListener listener, ListenerModel model, TcpProxyHandler tcpHandler, Http1ProxyHandler httpHandler, EchoHandler echoHandler, ConnectionTracker tracker, ConnectionBudget budget, TypeInitFaults faults, ForwarderMetrics metrics, ILogger logger, CancellationToken stopping)
    {
        _listener = listener;
        _model = model;
        _tcpHandler = tcpHandler;
        _httpHandler = httpHandler;
        _echoHandler = echoHandler;
        _tracker = tracker;
        _budget = budget;
        _faults = faults;
        _metrics = metrics;
        _logger = logger;
        _stopping = stopping;
        _logLimitReached = LimitReached;
    }

    public EndPoint BoundEndPoint => _listener.EndPoint;

    public ListenerModel Model
    {
        get => Volatile.Read(ref _model);
        set => Volatile.Write(ref _model, value);
    }

    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>Set by the runtime from the tcp section; read per connection.</summary>
    public bool DirectSend { get; set; } = true;

    public void Start()
    {
        // Connections need nothing from the caller's execution context (a reload's, the host's
        // logging scopes): without one to restore, every resumption of every session is cheaper.
        using (ExecutionContext.SuppressFlow())
        {
            _accepting = AcceptLoopAsync();
        }

        LogListening(_logger, Model.Config.Name, Model.Config.Protocol, BoundEndPoint);
    }

    public async Task StopAsync()
    {
        await _unbinding.CancelAsync().ConfigureAwait(false);
        await _listener.UnbindAsync().ConfigureAwait(false);
        await _accepting.ConfigureAwait(false);
        _unbinding.Dispose();
        await _listener.DisposeAsync().ConfigureAwait(false);
        LogStopped(_logger, Model.Config.Name, BoundEndPoint, ActiveConnections);
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            try
            {
                // At the cap the flood waits in the backlog until connections close.
                await _budget.WaitToAcceptAsync(_logLimitReached, _unbinding.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            ConnectionContext? connection;
            try
            {
                connection = await _listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Out of file descriptors or memory: the connection waits in the backlog while the
                // listener pauses (as HAProxy's does) rather than spins, then it is tried again.
                // A flood fails thousands of accepts: one line every few seconds says how many.
                var name = Model.Config.Name;
                var failure = AcceptFailures.Classify(ex);
                _metrics.Listener(name).AcceptFailed(failure);
                if (_acceptLog.TryLog(name, AcceptFailures.Label(failure), out var more))
                {
                    LogAcceptFailed(_logger, name, AcceptFailures.Label(failure), ex.Message, AcceptRetryDelay.TotalMilliseconds, more);
                }

                await Task.Delay(AcceptRetryDelay).ConfigureAwait(false);
                continue;
            }

            if (connection is null)
            {
                return;
            }

            _budget.Accepted();
            var model = Model;
            var metrics = _metrics.Listener(model.Config.Name);
            if (Interlocked.Increment(ref _active) > model.Config.MaxConnections)
            {
                Interlocked.Decrement(ref _active);
                metrics.ConnectionRejected();
                connection.Abort(new ConnectionAbortedException("The listener's connection limit was reached."));
                _ = CloseAndReleaseAsync(connection);
                continue;
            }

            _ = ServeAsync(connection, model, metrics);
        }
    }

    /// <summary>Runs one connection to its end; it never throws, so its task needs no observer.</summary>
    private async Task ServeAsync(ConnectionContext connection, ListenerModel model, ListenerMetrics metrics)
    {
        IListenerModelSource source = this;
        if (model.Intercept is { } table)
        {
            if (Intercept(connection, table) is not var (target, targetSource))
            {
                await CloseAndReleaseAsync(connection).ConfigureAwait(false);
                Interlocked.Decrement(ref _active);
                return;
            }

            (model, source) = (target, targetSource);
        }

        if (model.Config.Protocol == ListenerProtocol.Http)
        {
            try
            {
                connection = await _httpHandler.AdoptAsync(connection).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                // The client left before its connection could move to the epoll engine.
                LogConnectionFailed(_logger, connection.ConnectionId, model.Config.Name, ex);
                await CloseAndReleaseAsync(connection).ConfigureAwait(false);
                Interlocked.Decrement(ref _active);
                return;
            }
        }

        if (model.Http?.Tls is { } tls)
        {
            if (await tls.AuthenticateAsync(connection, _stopping).ConfigureAwait(false) is not { } secured)
            {
                await CloseAndReleaseAsync(connection).ConfigureAwait(false);
                Interlocked.Decrement(ref _active);
                return;
            }

            connection = secured;
        }

        metrics.ConnectionOpened();
        var client = new ClientConnection(connection, _tracker.Now);
        _tracker.Add(client);
        if (model.Config.Protocol == ListenerProtocol.Tcp)
        {
            // The L4 handler ends the connection itself (IConnectionEnd), from the splice's end
            // when it splices: nothing here waits for it. Its task never throws.
            _ = Handle(client, model, source, metrics);
            return;
        }

        try
        {
            await Handle(client, model, source, metrics).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ((IConnectionEnd)this).Failed(client, model.Config.Name, ex);
        }
        finally
        {
            await EndAsync(client, metrics).ConfigureAwait(false);
        }
    }

    void IConnectionEnd.Failed(ClientConnection client, string listener, Exception failure)
    {
        _faults.Observe(failure);
        LogConnectionFailed(_logger, client.Client.ConnectionId, listener, failure);
    }

    void IConnectionEnd.End(ClientConnection client, ListenerMetrics metrics) => _ = EndAsync(client, metrics);

    /// <summary>Never throws, so its task needs no observer; a second call for the same connection does nothing.</summary>
    private async Task EndAsync(ClientConnection client, ListenerMetrics metrics)
    {
        if (!client.TryEnd())
        {
            return;
        }

        await CloseAndReleaseAsync(client.Client).ConfigureAwait(false);
        metrics.ConnectionClosed();
        Interlocked.Decrement(ref _active);
        _tracker.Remove(client);
    }

    /// <summary>
    /// Starts the connection's handler with the flow of the execution context suppressed, so its
    /// state machines capture none when they first suspend. Resumed on an epoll thread (which
    /// suppresses flow for good), they then go on without one: no context to restore around every
    /// resumption of every request.
    /// </summary>
    private Task Handle(ClientConnection client, ListenerModel model, IListenerModelSource source, ListenerMetrics metrics)
    {
        AsyncFlowControl? suppressed = ExecutionContext.IsFlowSuppressed() ? null : ExecutionContext.SuppressFlow();
        try
        {
            return model.Config.Protocol switch
            {
                ListenerProtocol.Echo => _echoHandler.HandleAsync(client, metrics),
                ListenerProtocol.Http => _httpHandler.HandleAsync(client, source, metrics, _stopping),
                _ => _tcpHandler.HandleAsync(client, model, metrics, DirectSend, this, _stopping),
            };
        }
        finally
        {
            suppressed?.Undo();
        }
    }

    /// <summary>Closes an accepted connection (its socket, whoever holds it now, is closed by then) and gives its room back.</summary>
    private async Task CloseAndReleaseAsync(ConnectionContext connection)
    {
        try
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogConnectionFailed(_logger, connection.ConnectionId, Model.Config.Name, ex);
        }
        finally
        {
            _budget.Release();
        }
    }

    private void LimitReached()
    {
        var name = Model.Config.Name;
        if (_acceptLog.TryLog(name, "#limit", out var more))
        {
            LogLimitReached(_logger, name, _budget.OpenSockets, _budget.MaxConnections, more);
        }
    }

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Listener {Listener} ({Protocol}) accepting on {EndPoint}")]
    private static partial void LogListening(ILogger logger, string listener, ListenerProtocol protocol, EndPoint endPoint);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Listener {Listener} stopped accepting on {EndPoint}; {Active} connections drain on their own")]
    private static partial void LogStopped(ILogger logger, string listener, EndPoint endPoint, int active);

    [LoggerMessage(EventId = 203, Level = LogLevel.Error, Message = "Listener {Listener}: accept failed ({Reason}: {Error}); paused {PauseMs} ms before each retry ({Suppressed} more since the last such line)")]
    private static partial void LogAcceptFailed(ILogger logger, string listener, string reason, string error, double pauseMs, long suppressed);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "Listener {Listener}: connection limit reached ({Open} proxied sockets open, limits.maxConnections {Max}); accepting paused until connections close ({Suppressed} more pauses since the last such line)")]
    private static partial void LogLimitReached(ILogger logger, string listener, int open, int max, long suppressed);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "Connection {ConnectionId} on listener {Listener} failed")]
    private static partial void LogConnectionFailed(ILogger logger, string connectionId, string listener, Exception exception);
}
