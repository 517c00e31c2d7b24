using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;

namespace Forwarder.Tunnels;

/// <summary>How the remote node answered a tunnel stream's connect request.</summary>
internal enum TunnelStatus : byte
{
    Connected = 0,

    /// <summary>The target is not an endpoint the remote node hosts: it connects to nothing else.</summary>
    NotAllowed = 1,

    Refused = 2,
    Unreachable = 3,
    TimedOut = 4,
}

/// <summary>
/// The first bytes of a tunnel stream: the dialling node asks for a target (version 1, kind
/// connect, a 16-bit length and the target's HOST:PORT in UTF-8), the remote node answers one
/// status byte, and from then on the stream carries the connection's bytes.
/// </summary>
internal static class TunnelHandshake
{
    public const int MaxTargetLength = 1024;

    private const byte Version = 1;
    private const byte Connect = 1;

    public static void WriteConnect(PipeWriter output, string target)
    {
        var length = Encoding.UTF8.GetByteCount(target);
        var span = output.GetSpan(4 + length);
        span[0] = Version;
        span[1] = Connect;
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)length);
        Encoding.UTF8.GetBytes(target, span[4..]);
        output.Advance(4 + length);
    }

    /// <summary>The target asked for; null when the stream ended first or the request is not one this version knows.</summary>
    public static async ValueTask<string?> ReadConnectAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            switch (TryParseConnect(buffer, out var target, out var consumed))
            {
                case false:
                    input.AdvanceTo(buffer.End);
                    return null;
                case true:
                    input.AdvanceTo(consumed);
                    return target;
            }

            if (result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.End);
                return null;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>True with the target when a whole request is there, false when it is malformed, null when more is needed.</summary>
    private static bool? TryParseConnect(in ReadOnlySequence<byte> buffer, out string? target, out SequencePosition consumed)
    {
        (target, consumed) = (null, buffer.Start);
        if (buffer.Length < 4)
        {
            return null;
        }

        Span<byte> head = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(head);
        var length = BinaryPrimitives.ReadUInt16BigEndian(head[2..]);
        if (head[0] != Version || head[1] != Connect || length is 0 or > MaxTargetLength)
        {
            return false;
        }

        if (buffer.Length < 4 + length)
        {
            return null;
        }

        target = Encoding.UTF8.GetString(buffer.Slice(4, length));
        consumed = buffer.GetPosition(4 + length);
        return true;
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

    /// <summary>The socket error a local connect would have failed with, so callers treat a remote failure alike.</summary>
    public static SocketError ToSocketError(TunnelStatus? status) => status switch
    {
        TunnelStatus.Refused => SocketError.ConnectionRefused,
        TunnelStatus.TimedOut => SocketError.TimedOut,
        TunnelStatus.NotAllowed => SocketError.AccessDenied,
        _ => SocketError.HostUnreachable,
    };

    public static TunnelStatus FromSocketError(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => TunnelStatus.Refused,
        SocketError.TimedOut => TunnelStatus.TimedOut,
        _ => TunnelStatus.Unreachable,
    };
}
