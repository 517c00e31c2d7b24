using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Forwarder.Transports.Mux;
using Microsoft.AspNetCore.Connections;

namespace Forwarder.Tunnels;

/// <summary>How the remote node (or the relay) answered a tunnel stream's request.</summary>
internal enum TunnelStatus : byte
{
    Connected = 0,

    /// <summary>The target is not an endpoint the remote node hosts, or a name is not the caller's own.</summary>
    NotAllowed = 1,

    Refused = 2,
    Unreachable = 3,
    TimedOut = 4,

    /// <summary>The relay has no node of that name registered.</summary>
    UnknownNode = 5,

    /// <summary>The relay refused: the node is at its stream limit.</summary>
    Limited = 6,
}

/// <summary>What a tunnel stream asks for first.</summary>
internal enum TunnelRequestKind : byte
{
    /// <summary>Node to node: connect to <see cref="TunnelRequest.Target"/>.</summary>
    Connect = 1,

    /// <summary>Node to relay: register as <see cref="TunnelRequest.Node"/> (which must be the node's certificate name).</summary>
    Register = 2,

    /// <summary>Node to relay: reach <see cref="TunnelRequest.Target"/> on node <see cref="TunnelRequest.Node"/>.</summary>
    Relay = 3,

    /// <summary>Relay to node: node <see cref="TunnelRequest.Node"/> asks for <see cref="TunnelRequest.Target"/>.</summary>
    Relayed = 4,

    /// <summary>
    /// Node to relay: help punch a hole to node <see cref="TunnelRequest.Node"/> (the target,
    /// "-", is unused). Answered twice: Connected and a token the relay issued this node, which it sends
    /// the relay over UDP from the port it will dial from; then Connected and the far node's UDP address.
    /// </summary>
    Punch = 5,

    /// <summary>
    /// Relay to node: node <see cref="TunnelRequest.Node"/> is about to dial; the target is
    /// ADDRESS/TOKEN, the UDP address it was seen at and a token the relay issued this node, which
    /// it sends that relay over UDP from its QUIC port before it answers Connected.
    /// </summary>
    Punched = 6,

    /// <summary>
    /// Node to relay: help open a TCP path to node <see cref="TunnelRequest.Node"/> by simultaneous
    /// open (the target, "-", is unused). Answered twice: Connected and a token the relay issued this
    /// node, which it sends the relay over TCP from the port it will connect from; then Connected
    /// and the far node's TCP address.
    /// </summary>
    TcpPunch = 7,

    /// <summary>
    /// Relay to node: node <see cref="TunnelRequest.Node"/> is about to connect; the target is
    /// ADDRESS/TOKEN, the TCP address it was seen at and a token the relay issued this node, which
    /// it sent that relay over TCP from the port it waits on before it answers Connected.
    /// </summary>
    TcpPunched = 8,

    /// <summary>
    /// Node to relay: a rendezvous with node <see cref="TunnelRequest.Node"/> on the relay's splice
    /// port (the target is unused); answered Connected and this node's ticket, PORT/TICKET.
    /// </summary>
    Splice = 10,

    /// <summary>
    /// Relay to node: node <see cref="TunnelRequest.Node"/> asked for a spliced link; the target is
    /// this node's ticket, PORT/TICKET. Answered Connected by a node that will present it.
    /// </summary>
    Spliced = 11,
}

/// <summary>A parsed request; <see cref="Node"/> or <see cref="Target"/> is empty where the kind has none.</summary>
internal readonly record struct TunnelRequest(TunnelRequestKind Kind, string Node, string Target)
{
    public bool HasNode => Kind is not TunnelRequestKind.Connect;

    public bool HasTarget => Kind is not TunnelRequestKind.Register;
}

/// <summary>
/// The first bytes of a tunnel stream: a request (version 1, its kind, then the node name and/or
/// the target HOST:PORT the kind carries, each as a 16-bit length and UTF-8), answered with one
/// status byte; from then on the stream carries the connection's bytes.
/// </summary>
internal static class TunnelHandshake
{
    public const int MaxFieldLength = 1024;

    private const byte Version = 1;

    public static void WriteConnect(PipeWriter output, string target) => WriteRequest(output, new TunnelRequest(TunnelRequestKind.Connect, string.Empty, target));

    public static void WriteRequest(PipeWriter output, TunnelRequest request)
    {
        var span = output.GetSpan(2);
        span[0] = Version;
        span[1] = (byte)request.Kind;
        output.Advance(2);
        if (request.HasNode)
        {
            WriteField(output, request.Node);
        }

        if (request.HasTarget)
        {
            WriteField(output, request.Target);
        }
    }

    /// <summary>The request; null when the stream ended first or the request is not one this version knows.</summary>
    public static async ValueTask<TunnelRequest?> ReadRequestAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            switch (TryParse(buffer, out var request, out var consumed))
            {
                case false:
                    input.AdvanceTo(buffer.End);
                    return null;
                case true:
                    input.AdvanceTo(consumed);
                    return request;
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.End);
                return null;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>A text field after the answer (hole punching's address or token): a 16-bit length and UTF-8.</summary>
    public static void WriteField(PipeWriter output, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        var span = output.GetSpan(2 + length);
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)length);
        Encoding.UTF8.GetBytes(value, span[2..]);
        output.Advance(2 + length);
    }

    /// <summary>True with the request when a whole one is there, false when it is malformed, null when more is needed.</summary>
    private static bool? TryParse(in ReadOnlySequence<byte> buffer, out TunnelRequest request, out SequencePosition consumed)
    {
        (request, consumed) = (default, buffer.Start);
        if (buffer.Length < 2)
        {
            return null;
        }

        Span<byte> head = stackalloc byte[2];
        buffer.Slice(0, 2).CopyTo(head);
        var kind = (TunnelRequestKind)head[1];
        if (head[0] != Version || !Enum.IsDefined(kind))
        {
            return false;
        }

        var rest = buffer.Slice(2);
        var shape = new TunnelRequest(kind, string.Empty, string.Empty);
        var node = string.Empty;
        var target = string.Empty;
        if (shape.HasNode)
        {
            var parsed = TryParseField(ref rest, out node);
            if (parsed is not true)
            {
                return parsed;
            }
        }

        if (shape.HasTarget)
        {
            var parsed = TryParseField(ref rest, out target);
            if (parsed is not true)
            {
                return parsed;
            }
        }

        request = shape with { Node = node, Target = target };
        consumed = rest.Start;
        return true;
    }

    private static bool? TryParseField(ref ReadOnlySequence<byte> buffer, out string value)
    {
        value = string.Empty;
        if (buffer.Length < 2)
        {
            return null;
        }

        Span<byte> prefix = stackalloc byte[2];
        buffer.Slice(0, 2).CopyTo(prefix);
        var length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
        if (length is 0 or > MaxFieldLength)
        {
            return false;
        }

        if (buffer.Length < 2 + length)
        {
            return null;
        }

        value = Encoding.UTF8.GetString(buffer.Slice(2, length));
        buffer = buffer.Slice(2 + length);
        return true;
    }

    /// <summary>The field <see cref="WriteField"/> wrote; null when the stream ended first or the field is malformed.</summary>
    public static async ValueTask<string?> ReadFieldAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var rest = result.Buffer;
            var parsed = TryParseField(ref rest, out var value);
            if (parsed is true)
            {
                input.AdvanceTo(rest.Start);
                return value;
            }

            if (parsed is false || result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(result.Buffer.End);
                return null;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    public static void WriteStatus(PipeWriter output, TunnelStatus status)
    {
        output.GetSpan(1)[0] = (byte)status;
        output.Advance(1);
    }

    /// <summary>The remote node's answer; null when the stream ended without one.</summary>
    public static async ValueTask<TunnelStatus?> ReadStatusAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (!result.Buffer.IsEmpty)
            {
                var status = (TunnelStatus)result.Buffer.FirstSpan[0];
                input.AdvanceTo(result.Buffer.GetPosition(1));
                return status;
            }

            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// Opens a stream on <paramref name="session"/> and asks <paramref name="request"/> on it
    /// (<see cref="AskAsync"/>): the stream when the answer is <see cref="TunnelStatus.Connected"/>,
    /// and a null status when the session or stream broke before an answer came.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<(YamuxStream? Stream, TunnelStatus? Status)> RequestAsync(YamuxSession session, TunnelRequest request, CancellationToken cancellationToken)
    {
        YamuxStream stream;
        try
        {
            stream = session.OpenStream();
        }
        catch (YamuxSessionClosedException)
        {
            return (null, null);
        }

        var status = await AskAsync(stream, request, cancellationToken).ConfigureAwait(false);
        return (status == TunnelStatus.Connected ? stream : null, status);
    }

    /// <summary>
    /// Sends <paramref name="request"/> on a new <paramref name="stream"/> of any link and reads the
    /// answer; the stream is disposed unless it is <see cref="TunnelStatus.Connected"/>, and the
    /// status is null when the stream broke before an answer came.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public static async Task<TunnelStatus?> AskAsync(ConnectionContext stream, TunnelRequest request, CancellationToken cancellationToken)
    {
        TunnelStatus? status;
        try
        {
            WriteRequest(stream.Transport.Output, request);
            await stream.Transport.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
            status = await ReadStatusAsync(stream.Transport.Input, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            status = null;
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        if (status != TunnelStatus.Connected)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>The socket error a local connect would have failed with, so callers treat a remote failure alike.</summary>
    public static SocketError ToSocketError(TunnelStatus? status) => status switch
    {
        TunnelStatus.Refused => SocketError.ConnectionRefused,
        TunnelStatus.TimedOut => SocketError.TimedOut,
        TunnelStatus.NotAllowed => SocketError.AccessDenied,
        TunnelStatus.Limited => SocketError.TooManyOpenSockets,
        _ => SocketError.HostUnreachable,
    };

    public static TunnelStatus FromSocketError(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => TunnelStatus.Refused,
        SocketError.TimedOut => TunnelStatus.TimedOut,
        _ => TunnelStatus.Unreachable,
    };
}
