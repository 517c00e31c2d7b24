using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Tls;
using Forwarder.Transports.Memory;
using Forwarder.Transports.Tcp;

namespace Forwarder.Tests.Tls;

/// <summary>
/// What a <see cref="TlsConnection"/> puts on the wire (node links and relay sessions run over
/// it): bulk plaintext leaves in full 16 KiB records, where the pipe's 4 KiB default made a record
/// of every 4 KiB; and disposing it ends the TLS session with a close_notify the peer sees.
/// </summary>
public sealed class TlsConnectionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ABulkWrite_LeavesInFullSizeRecords_AndDisposing_EndsTheSessionCleanly()
    {
        using var certificate = SelfSigned();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var pool = new PinnedBlockMemoryPool(64 * 1024);
        var connecting = new TcpConnectionFactory(new TcpTransportOptions(), pool).ConnectAsync(listener.LocalEndpoint);
        using var peerSocket = await listener.AcceptSocketAsync().WaitAsync(Timeout);
        var connection = await connecting;

        var records = new RecordCounter(new NetworkStream(peerSocket, ownsSocket: false));
        await using var peer = new SslStream(records);
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        await Task.WhenAll(
            peer.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate, EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13 }),
            ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "link.test", RemoteCertificateValidationCallback = (_, _, _, _) => true })).WaitAsync(Timeout);
        var link = new TlsConnection(connection, ssl, carrier);
        records.Reset();

        var payload = new byte[256 * 1024];
        Random.Shared.NextBytes(payload);
        await link.Transport.Output.WriteAsync(payload).AsTask().WaitAsync(Timeout);
        var received = new byte[payload.Length];
        await peer.ReadExactlyAsync(received).AsTask().WaitAsync(Timeout);
        Assert.Equal(payload, received);

        // 16 full records; a few more allowed for how TLS may cut them, far from the 64 of 4 KiB each.
        Assert.InRange(records.Count, payload.Length / (16 * 1024), (payload.Length / (16 * 1024)) + 4);

        await link.DisposeAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal(0, await peer.ReadAsync(received).AsTask().WaitAsync(Timeout));
    }

    [Fact]
    public async Task APeerThatStopsReading_HasTheConnectionAborted_WhenTheCloseTimeoutRunsOut()
    {
        using var certificate = SelfSigned();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Server.ReceiveBufferSize = 4096;
        listener.Start();
        using var pool = new PinnedBlockMemoryPool(64 * 1024);
        var connecting = new TcpConnectionFactory(new TcpTransportOptions(), pool).ConnectAsync(listener.LocalEndpoint);
        using var peerSocket = await listener.AcceptSocketAsync().WaitAsync(Timeout);
        var connection = await connecting;

        // Small kernel buffers: what the peer leaves unread stays in the connection's own pipe.
        ((TcpConnection)connection).Socket.SendBufferSize = 4096;
        await using var peer = new SslStream(new NetworkStream(peerSocket, ownsSocket: false));
        var carrier = new DuplexPipeStream(connection.Transport);
        var ssl = new SslStream(carrier, leaveInnerStreamOpen: true);
        await Task.WhenAll(
            peer.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate, EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls13 }),
            ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "link.test", RemoteCertificateValidationCallback = (_, _, _, _) => true })).WaitAsync(Timeout);
        var link = new TlsConnection(connection, ssl, carrier, closeTimeout: TimeSpan.FromSeconds(1));

        // Taken by the pipe (under its 1 MiB limit), never by the peer.
        await link.Transport.Output.WriteAsync(new byte[256 * 1024]).AsTask().WaitAsync(Timeout);

        // Without the deadline the close waits on the send forever.
        await link.DisposeAsync().AsTask().WaitAsync(Timeout);
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=link.test", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    /// <summary>Counts the TLS records read through it (after <see cref="Reset"/>), from their 5-byte headers.</summary>
    private sealed class RecordCounter(Stream inner) : Stream
    {
        private readonly byte[] _header = new byte[5];
        private int _headerBytes;
        private int _bodyLeft;

        public int Count { get; private set; }

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public void Reset() => Count = 0;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            Observe(buffer.Span[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = inner.Read(buffer, offset, count);
            Observe(buffer.AsSpan(offset, read));
            return read;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        private void Observe(ReadOnlySpan<byte> bytes)
        {
            while (!bytes.IsEmpty)
            {
                if (_bodyLeft > 0)
                {
                    var skip = Math.Min(_bodyLeft, bytes.Length);
                    _bodyLeft -= skip;
                    bytes = bytes[skip..];
                    continue;
                }

                _header[_headerBytes++] = bytes[0];
                bytes = bytes[1..];
                if (_headerBytes == _header.Length)
                {
                    _headerBytes = 0;
                    _bodyLeft = (_header[3] << 8) | _header[4];
                    Count++;
                }
            }
        }
    }
}
