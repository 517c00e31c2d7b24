using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Forwarder.Configuration;
using Forwarder.Relay;
using Forwarder.Tests.Infrastructure;
using Forwarder.Transports.Mux;
using Forwarder.Transports.Tcp;
using Forwarder.Tunnels;
using Microsoft.Extensions.Logging.Abstractions;

namespace Forwarder.Tests.Relay;

/// <content>
/// The nodes these tests play by hand, and a forwarder that records the bytes it passes.
/// </content>
public sealed partial class RelaySpliceTests
{
    /// <summary>A node's relay session driven by the test: it takes (or, as an old node would, ignores) splice offers.</summary>
    private sealed class HandNode(YamuxSession session, Microsoft.AspNetCore.Connections.ConnectionContext link, Task serving) : IAsyncDisposable
    {
        public YamuxSession Session { get; } = session;

        /// <summary>The tickets offered to this node, PORT/TICKET.</summary>
        public System.Threading.Channels.Channel<string> Offers { get; } = System.Threading.Channels.Channel.CreateUnbounded<string>();

        public static async Task<HandNode> RegisterAsync(RunningRelay relay, string name, string folder, bool answer = true)
        {
            using var credentials = new NodeCredentials(
                name,
                new CertificateFiles(Path.Combine(folder, name + ".pem"), Path.Combine(folder, name + ".key")),
                Path.Combine(folder, "ca.pem"),
                NullLogger.Instance);
            var tcp = new TcpConnectionFactory(new TcpTransportOptions(), new Forwarder.Transports.Memory.PinnedBlockMemoryPool(64 * 1024), splicer: null);
            var dialled = await LinkDialer.DialAsync(tcp, relay.EndPoint, credentials, relay.Name, NodeCredentials.RelayProtocol, LinkDialer.Options(TimeSpan.FromSeconds(30), MemoryPool<byte>.Shared), CancellationToken.None);
            var (stream, status) = await TunnelHandshake.RequestAsync(dialled.Session, new TunnelRequest(TunnelRequestKind.Register, name, string.Empty), CancellationToken.None);
            Assert.Equal(TunnelStatus.Connected, status);
            await stream!.DisposeAsync();
            var started = new TaskCompletionSource<HandNode>();
            var node = new HandNode(dialled.Session, dialled.Connection, ServeAsync(dialled.Session, started.Task, answer));
            started.SetResult(node);
            return node;
        }

        public async ValueTask DisposeAsync()
        {
            await Session.DisposeAsync();
            await link.DisposeAsync();
            await serving;
        }

        private static async Task ServeAsync(YamuxSession session, Task<HandNode> self, bool answer)
        {
            var node = await self;
            try
            {
                while (await session.AcceptStreamAsync(CancellationToken.None) is { } stream)
                {
                    await using (stream)
                    {
                        if (await TunnelHandshake.ReadRequestAsync(stream.Transport.Input, CancellationToken.None) is { Kind: TunnelRequestKind.Spliced } offer && answer)
                        {
                            TunnelHandshake.WriteStatus(stream.Transport.Output, TunnelStatus.Connected);
                            await stream.Transport.Output.FlushAsync();
                            node.Offers.Writer.TryWrite(offer.Target);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or Microsoft.AspNetCore.Connections.ConnectionResetException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
            {
                // The session ended with the test.
            }
        }
    }

    /// <summary>A TCP forwarder on 127.0.0.2 at <paramref name="target"/>'s port that keeps a copy of every byte it passes, both ways.</summary>
    private sealed class RecordingForwarder : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly MemoryStream _recorded = new();
        private readonly CancellationTokenSource _stopping = new();
        private readonly IPEndPoint _target;

        public RecordingForwarder(IPEndPoint target)
        {
            _target = target;
            _listener.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), target.Port));
            _listener.Listen(16);
            _ = AcceptAsync();
        }

        public byte[] Recorded
        {
            get
            {
                lock (_recorded)
                {
                    return _recorded.ToArray();
                }
            }
        }

        public void Dispose()
        {
            _stopping.Cancel();
            _listener.Dispose();
            _stopping.Dispose();
        }

        private async Task AcceptAsync()
        {
            while (true)
            {
                Socket client;
                try
                {
                    client = await _listener.AcceptAsync(_stopping.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
                {
                    return;
                }

                _ = ForwardAsync(client);
            }
        }

        private async Task ForwardAsync(Socket client)
        {
            using (client)
            using (var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                try
                {
                    await upstream.ConnectAsync(_target);
                    await Task.WhenAll(CopyAsync(client, upstream), CopyAsync(upstream, client));
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    // Either side went: the test sees it at the node.
                }
            }
        }

        private async Task CopyAsync(Socket from, Socket to)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (await from.ReceiveAsync(buffer, SocketFlags.None) is var read and > 0)
                {
                    lock (_recorded)
                    {
                        // The first bytes to arrive first: the half's ticket leads the record.
                        _recorded.Write(buffer, 0, read);
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                }

                to.Shutdown(SocketShutdown.Send);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                from.Close();
                to.Close();
            }
        }
    }
}
