using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Forwarder.Configuration;
using Forwarder.L7.Http1;
using Forwarder.L7.Http2.Server;
using Forwarder.Runtime;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.L7.Http2.Proxy;

/// <summary>
/// The native HTTP/2 front's request handler, one per client connection: each request stream of
/// an <see cref="Http2ServerConnection"/> is routed, balanced and forwarded over the endpoint's
/// <see cref="Client.Http2ClientPool"/>, with the rules <see cref="HttpForwarder"/> keeps for
/// Kestrel's requests (routing on the request described as an HTTP/1.1 head, path
/// normalization, refusals as gRPC statuses for gRPC calls, hash keys, passive health, retries
/// by <see cref="RetryDecision"/>, forwarding headers, metrics, access log). Request and
/// response bodies stream at once, trailers pass both ways, and a reset on either side resets
/// the other.
/// </summary>
internal sealed partial class Http2ProxyHandler : IHttp2StreamHandler
{
    private static readonly ConcurrentDictionary<int, Refusal> Refusals = new();
    private static long s_requests;

    private readonly Http1ProxyHandler _owner;
    private readonly Http2ConnectionState _state;
    private readonly ConnectionTracker _tracker;
    private readonly string _connectionId;
    private readonly IPAddress? _clientAddress;
    private readonly byte[] _clientAddressText;
    private readonly byte[] _scheme;
    private readonly Stack<Http2ProxyExchange> _pool = new();

    /// <summary>Every exchange this connection made (under <see cref="_poolLock"/>), for the route timeouts' check on the tracker's tick.</summary>
    private readonly List<Http2ProxyExchange> _exchanges = [];
    private readonly Lock _poolLock = new();

    /// <summary>The upstream writes of the streams one read of the client opens: their heads leave together at the read's end.</summary>
    private readonly Client.Http2ClientBatch _upstreamWrites = new();

    /// <summary>On the reader only: the exchanges whose request body pump waits for the read's end (their body may be in it).</summary>
    private readonly List<Http2ProxyExchange> _bodiesAtReadEnd = [];

    /// <summary>The thread applying a read of the client now (between ReadStarted and ReadEnded), else 0.</summary>
    private int _readingThread;

    /// <summary>What this connection's upstream streams may buffer of their responses past their opening windows, however many streams the client leaves unread.</summary>
    private readonly Client.Http2ResponseBudget _responseBudget;

    public Http2ProxyHandler(Http1ProxyHandler owner, ClientConnection client, Http2ConnectionState state, ConnectionTracker tracker)
    {
        _owner = owner;
        _state = state;
        _tracker = tracker;
        _connectionId = client.Client.ConnectionId;
        var remote = (client.Client.RemoteEndPoint as IPEndPoint)?.Address;
        _clientAddress = remote is { IsIPv4MappedToIPv6: true } ? remote.MapToIPv4() : remote;
        _clientAddressText = _clientAddress is null ? []
            : Encoding.ASCII.GetBytes(_clientAddress.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{_clientAddress}]" : _clientAddress.ToString());
        _scheme = client.Client.Features.Get<ITlsConnectionFeature>() is null ? "http"u8.ToArray() : "https"u8.ToArray();
        client.CheckOwnDeadlines = CheckDeadlines;

        // Fixed for the connection's life: a reload applies to connections accepted after it.
        _responseBudget = new Client.Http2ResponseBudget(state.Host.Model.Http?.Config.ResponseBufferPerConnection ?? HttpListenerConfig.DefaultResponseBufferPerConnection, state.Metrics);
    }

    public void ReadStarted()
    {
        _readingThread = Environment.CurrentManagedThreadId;
        _upstreamWrites.Open();
    }

    /// <summary>
    /// The read's frames are all applied: the request bodies that came in it are pumped now,
    /// inline (a unary call's whole body, with END_STREAM, joins its HEADERS in the batch), then
    /// the batch goes upstream.
    /// </summary>
    public void ReadEnded()
    {
        _readingThread = 0;
        try
        {
            // By index: a released exchange may run on (a failed attempt, a retry) but adds none, the read being over.
            for (var i = 0; i < _bodiesAtReadEnd.Count; i++)
            {
                // Per item: one that throws must not strand the rest, each parked until its release.
                try
                {
                    _bodiesAtReadEnd[i].ReleaseBody();
                }
                catch (Exception error)
                {
                    _owner.LogBodyReleaseFailed(_connectionId, error);
                }
            }
        }
        finally
        {
            _bodiesAtReadEnd.Clear();
            _upstreamWrites.Close();
        }
    }

    /// <summary>
    /// Whether this runs inline on the reader within a read: the HEADERS' read may hold the body
    /// too, but its DATA frames are applied only after the HEADERS' handler has run up to here.
    /// </summary>
    private bool InRead => _readingThread == Environment.CurrentManagedThreadId;

    public void Refused(int status, string reason)
    {
        _state.Metrics.HttpRefused(status);
        _owner.LogRefused(_connectionId, status, reason);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask HandleAsync(Http2ServerStream stream)
    {
        var exchange = Rent();
        try
        {
            await ForwardAsync(stream, exchange).ConfigureAwait(false);
        }
        finally
        {
            Return(exchange);
        }
    }

    private async ValueTask ForwardAsync(Http2ServerStream stream, Http2ProxyExchange exchange)
    {
        if (_state.Host.Model.Http is not { } model)
        {
            await RefuseAsync(stream, exchange, null, 503).ConfigureAwait(false);
            return;
        }

        if (model.Config.Http2Engine != Http2Engine.Native)
        {
            // A reload moved the listener off this engine (say auto now picks Kestrel, for an
            // HTTP/1.1 service): GOAWAY, so the client's next connection gets the engine the
            // config resolves to now; this request is still served here.
            stream.ShutdownConnection();
        }

        var described = Http2RequestDescription.Fill(stream.RequestHeaders, model.Config.Limits, exchange.Head);
        if (described != 0)
        {
            await RefuseAsync(stream, exchange, null, described).ConfigureAwait(false);
            return;
        }

        var head = exchange.Head;
        if (stream.RemoteClosed && head.ContentLength > 0)
        {
            // HEADERS ended the stream: no body will match the declared length.
            await RefuseAsync(stream, exchange, null, 400).ConfigureAwait(false);
            return;
        }

        head.NormalizePath(model.Config.PathNormalization);
        var route = model.Routes.Match(head);
        if (route is null)
        {
            await RefuseAsync(stream, exchange, null, 404).ConfigureAwait(false);
            return;
        }

        route.Metrics.RequestStarted();
        if (model.Config.MaxBodySize < head.ContentLength)
        {
            await RefuseAsync(stream, exchange, route, 413).ConfigureAwait(false);
            return;
        }

        route.Budget.RequestStarted();
        try
        {
            await ForwardAsync(stream, exchange, model, route).ConfigureAwait(false);
        }
        finally
        {
            route.Budget.RequestEnded();
        }
    }

    private static bool IsGrpc(Http2ServerStream stream)
    {
        var type = stream.RequestHeaders.Get("content-type"u8);
        return type.Length >= 16 && Ascii.EqualsIgnoreCase(type[..16], "application/grpc"u8);
    }

    private static bool IsIdempotent(Http2ServerStream stream)
    {
        var method = stream.Method;
        return method.SequenceEqual("GET"u8) || method.SequenceEqual("HEAD"u8) || method.SequenceEqual("OPTIONS"u8)
            || method.SequenceEqual("PUT"u8) || method.SequenceEqual("DELETE"u8) || method.SequenceEqual("TRACE"u8);
    }

    /// <summary>
    /// Answers the request itself: a text/plain page, or for a gRPC call a trailers-only
    /// response with the status's gRPC code. Past the response head, the stream is reset.
    /// </summary>
    private async ValueTask RefuseAsync(Http2ServerStream stream, Http2ProxyExchange exchange, RouteModel? route, int status, ServiceModel? service = null)
    {
        route?.Metrics.Responded(status);
        service?.Metrics.Http.Responded(status);
        _state.Metrics.HttpRefused(status);
        if (exchange.HeadSent)
        {
            stream.Reset(Codec.Http2ErrorCode.InternalError);
            return;
        }

        var refusal = Refusals.GetOrAdd(status, static code => Refusal.For(code));
        var fields = exchange.Response;
        fields.Clear();
        exchange.HeadSent = true;
        if (IsGrpc(stream))
        {
            fields.Add("content-type"u8, "application/grpc"u8);
            fields.Add("grpc-status"u8, refusal.GrpcStatus);
            fields.Add("grpc-message"u8, refusal.GrpcMessage);
            stream.WriteHeaders(200, fields, endStream: true);
            return;
        }

        fields.Add("content-type"u8, "text/plain; charset=utf-8"u8);
        fields.Add("content-length"u8, refusal.Length);
        if (stream.Method.SequenceEqual("HEAD"u8))
        {
            // A response to HEAD has no content (RFC 9110 9.3.2): strict clients reset a stream that sends some.
            stream.WriteHeaders(status, fields, endStream: true);
            return;
        }

        stream.WriteHeaders(status, fields);
        await stream.WriteAsync(refusal.Body).ConfigureAwait(false);
        stream.Complete();
    }

    private Http2ProxyExchange Rent()
    {
        lock (_poolLock)
        {
            if (_pool.TryPop(out var exchange))
            {
                return exchange;
            }
        }

        var created = new Http2ProxyExchange();
        lock (_poolLock)
        {
            _exchanges.Add(created);
        }

        return created;
    }

    /// <summary>On the tracker's tick: the route timeouts of this connection's streams (at most its stream limit).</summary>
    private void CheckDeadlines(long now)
    {
        lock (_poolLock)
        {
            foreach (var exchange in _exchanges)
            {
                exchange.CheckDeadline(now);
            }
        }
    }

    private void Return(Http2ProxyExchange exchange)
    {
        exchange.Reset();
        lock (_poolLock)
        {
            _pool.Push(exchange);
        }
    }

    /// <summary>A request id for the upstream when the client sent none: <c>h2-</c> and a process-wide counter in hex.</summary>
    private static void NewRequestId(Http2ProxyExchange exchange)
    {
        "h2-"u8.CopyTo(exchange.RequestId);
        Utf8Formatter.TryFormat(Interlocked.Increment(ref s_requests), exchange.RequestId.AsSpan(3), out var written, new StandardFormat('x'));
        exchange.RequestIdLength = 3 + written;
    }

    /// <summary>What the proxy answers for one status, as bytes made once.</summary>
    private sealed record Refusal(byte[] Body, byte[] Length, byte[] GrpcStatus, byte[] GrpcMessage)
    {
        public static Refusal For(int status)
        {
            var reason = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
            var body = Encoding.ASCII.GetBytes($"{status} {reason}\n");
            return new Refusal(
                body,
                Encoding.ASCII.GetBytes(body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                Encoding.ASCII.GetBytes(Http2.GrpcStatus.CodeFor(status).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                Encoding.ASCII.GetBytes(Uri.EscapeDataString($"forwarder: {status} {reason}")));
        }
    }
}
