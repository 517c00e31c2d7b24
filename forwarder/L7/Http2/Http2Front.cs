using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Forwarder.Configuration;
using Forwarder.Metrics;
using Forwarder.Runtime;
using Forwarder.Transports.Tcp;

namespace Forwarder.L7.Http2;

/// <summary>
/// HTTP/2 for http listeners, through Kestrel: a connection whose first bytes are the HTTP/2
/// preface (h2c with prior knowledge) is lent to one process-wide Kestrel server that speaks
/// only HTTP/2 and listens on nothing (<see cref="HandoffListenerFactory"/>); each request it
/// decodes goes to <see cref="HttpForwarder"/>. Kestrel brings the HTTP/2 protocol (streams,
/// flow control, HPACK, trailers); routing, balancing and health stay the proxy's own.
/// </summary>
internal sealed class Http2Front : IAsyncDisposable
{
    private const uint NoError = 0x0;
    private const uint EnhanceYourCalm = 0xb;
    private static readonly TimeSpan LingerTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan KestrelKeepAliveTimeout = TimeSpan.FromDays(365);

    private readonly HandoffListenerFactory _transport = new();
    private readonly ConcurrentDictionary<string, Lent> _connections = new(StringComparer.Ordinal);
    private readonly KestrelServer _server;
    private readonly HttpForwarder _forwarder;
    private readonly SemaphoreSlim _startLock = new(1, 1);
    private bool _started;

    public Http2Front(HttpForwarder forwarder, ILoggerFactory loggerFactory)
    {
        _forwarder = forwarder;
        var options = new KestrelServerOptions { AddServerHeader = false };
        options.Limits.Http2.MaxStreamsPerConnection = 1000;
        options.Limits.MaxRequestBodySize = null;

        // Idle connections are the guard's to close, by each listener's keepAliveTimeout; Kestrel's
        // process-wide one (and its keep-alive PINGs, off by default) must not close them first.
        // Large rather than infinite: Kestrel turns infinite into TimeSpan.MaxValue, whose ticks
        // overflow its deadline arithmetic and close every idle connection at the next heartbeat.
        options.Limits.KeepAliveTimeout = KestrelKeepAliveTimeout;

        // Streams (gRPC client and bidirectional ones) may trickle: the proxy's own limits (the
        // route's timeout for the response head, maxBodySize) govern them, not Kestrel's default
        // minimum data rates, which would cut a body slower than 240 B/s after 5 s.
        options.Limits.MinRequestBodyDataRate = null;
        options.Limits.MinResponseDataRate = null;
        options.Listen(new IPEndPoint(IPAddress.None, 0), listen => listen.Protocols = HttpProtocols.Http2);
        _server = new KestrelServer(Options.Create(options), _transport, loggerFactory);
    }

    /// <summary>Serves the connection over HTTP/2 until the client or shutdown ends it.</summary>
    /// <param name="state">The listener's view of the connection, for the requests it carries.</param>
    public async Task ServeAsync(ClientConnection client, ConnectionTracker tracker, Http2ConnectionState state)
    {
        await EnsureStartedAsync().ConfigureAwait(false);
        var connection = client.Client;
        var config = state.Host.Model.Http?.Config;
        var headerTimeout = config?.HeaderTimeout ?? HttpListenerConfig.DefaultHeaderTimeout;
        var keepAliveTimeout = config?.KeepAliveTimeout ?? HttpListenerConfig.DefaultKeepAliveTimeout;
        HandedOffConnection? lent = null;
        var guard = new Http2ClientGuard(connection.Transport.Input, client, tracker, headerTimeout, keepAliveTimeout, () => lent!.EndForKestrel());
        lent = new HandedOffConnection(connection, new DuplexPipe(guard, new HeldPipeWriter(connection.Transport.Output, () => guard.Reason is not null)));
        _connections[connection.ConnectionId] = new Lent(state, guard);
        try
        {
            if (_transport.HandOff(lent))
            {
                await lent.Done.ConfigureAwait(false);
            }
        }
        finally
        {
            _connections.TryRemove(connection.ConnectionId, out _);
            guard.Close();
        }

        if (guard.Reason is { } reason)
        {
            state.Metrics.Http2GoAway(reason);
            await GoAwayAsync(client, tracker, guard.LastStreamId, reason is Http2GoAwayReason.HeaderTimeout or Http2GoAwayReason.Idle ? NoError : EnhanceYourCalm).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Shutdown: every HTTP/2 connection gets a GOAWAY, requests in flight finish until
    /// <paramref name="cancellationToken"/> fires, then what is left is aborted.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _startLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (_started)
            {
                _started = false;
                await _server.StopAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _startLock.Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        _server.Dispose();
        _startLock.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Says why the guard ended the connection (RFC 9113 6.8), then closes it gracefully: the
    /// FIN follows the GOAWAY, and what the client still sends is read and dropped for a moment,
    /// since closing with unread input would reset the connection and could destroy the GOAWAY.
    /// </summary>
    private static async Task GoAwayAsync(ClientConnection client, ConnectionTracker tracker, int lastStreamId, uint errorCode)
    {
        var transport = client.Client.Transport;
        try
        {
            var frame = transport.Output.GetSpan(17);
            frame[..9].Clear();
            frame[2] = 8;
            frame[3] = 0x7;
            BinaryPrimitives.WriteInt32BigEndian(frame[9..], lastStreamId);
            BinaryPrimitives.WriteUInt32BigEndian(frame[13..], errorCode);
            transport.Output.Advance(17);
            await transport.Output.FlushAsync().ConfigureAwait(false);
            await transport.Output.CompleteAsync().ConfigureAwait(false);
            client.ArmDeadline(tracker.DeadlineAfter(LingerTimeout), transport.Input);
            while (true)
            {
                var result = await transport.Input.ReadAsync().ConfigureAwait(false);
                transport.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
        {
            // The client went away first: nothing left to say.
        }
        finally
        {
            client.DisarmDeadline();
        }
    }

    /// <summary>Starts the HTTP/2 server now rather than with the first h2 connection, which may come at the descriptor limit.</summary>
    public ValueTask WarmUpAsync() => EnsureStartedAsync();

    private async ValueTask EnsureStartedAsync()
    {
        if (Volatile.Read(ref _started))
        {
            return;
        }

        await _startLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_started)
            {
                await _server.StartAsync(new Application(_forwarder, _connections), CancellationToken.None).ConfigureAwait(false);
                Volatile.Write(ref _started, true);
            }
        }
        finally
        {
            _startLock.Release();
        }
    }

    /// <summary>Kestrel's view of the proxy: a context per request, handled by the forwarder.</summary>
    private sealed class Application(HttpForwarder forwarder, ConcurrentDictionary<string, Lent> connections) : IHttpApplication<HttpContext>
    {
        public HttpContext CreateContext(IFeatureCollection contextFeatures) => new DefaultHttpContext(contextFeatures);

        public Task ProcessRequestAsync(HttpContext context)
        {
            if (!connections.TryGetValue(context.Connection.Id, out var lent))
            {
                context.Abort();
                return Task.CompletedTask;
            }

            lent.Guard.RequestStarted();
            return forwarder.ForwardAsync(context, lent.State);
        }

        /// <summary>Kestrel calls this once the request's response has ended (every ProcessRequestAsync is followed by one).</summary>
        public void DisposeContext(HttpContext context, Exception? exception)
        {
            if (connections.TryGetValue(context.Connection.Id, out var lent))
            {
                lent.Guard.RequestEnded();
            }
        }
    }

    /// <summary>A connection lent to Kestrel: its listener's view, and the guard that times it out.</summary>
    private readonly record struct Lent(Http2ConnectionState State, Http2ClientGuard Guard);
}

/// <summary>What requests on a lent HTTP/2 connection need from the listener that accepted it.</summary>
internal sealed record Http2ConnectionState(Runtime.IListenerModelSource Host, Metrics.ListenerMetrics Metrics);
