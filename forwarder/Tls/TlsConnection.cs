using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Forwarder.Transports.Tcp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Forwarder.Tls;

/// <summary>
/// An accepted connection after its TLS handshake: the transport is the plaintext inside the
/// <see cref="SslStream"/>, and the features say TLS was used and which protocol ALPN chose, as
/// Kestrel's own HTTPS middleware would (so requests lent to Kestrel see scheme https).
/// Disposing ends the TLS session with close_notify, then closes the connection under it.
/// </summary>
internal sealed class TlsConnection : ConnectionContext, ITlsConnectionFeature, ITlsApplicationProtocolFeature
{
    /// <summary>Large enough for a whole TLS record's plaintext (16 KiB) in one read.</summary>
    private const int ReadBufferSize = 16 * 1024;

    /// <summary>
    /// Plaintext handed to TLS per write: several full 16 KiB records at a time, where the pipe's
    /// 4 KiB default made a record (and a send) of every 4 KiB.
    /// </summary>
    private const int WriteBufferSize = 64 * 1024;

    private readonly ConnectionContext _inner;
    private readonly SslStream _ssl;
    private readonly DuplexPipeStream _carrier;
    private readonly FeatureCollection _features;
    private readonly TimeSpan? _closeTimeout;
    private volatile bool _aborted;

    /// <param name="carrier">The stream under <paramref name="ssl"/>, its handshake done: from now on its records go out one batch per flush.</param>
    /// <param name="closeTimeout">How long disposing may wait for the peer to take what is still queued before the connection is aborted; null: as long as it takes.</param>
    public TlsConnection(ConnectionContext inner, SslStream ssl, DuplexPipeStream carrier, TimeSpan? closeTimeout = null)
    {
        _inner = inner;
        _closeTimeout = closeTimeout;
        _ssl = ssl;
        _carrier = carrier;
        carrier.BatchWrites();
        _features = new FeatureCollection(inner.Features);
        _features.Set<ITlsConnectionFeature>(this);
        _features.Set<ITlsApplicationProtocolFeature>(this);
        ApplicationProtocol = ssl.NegotiatedApplicationProtocol.Protocol;
        Transport = new DuplexPipe(
            PipeReader.Create(ssl, new StreamPipeReaderOptions(bufferSize: ReadBufferSize, leaveOpen: true)),
            PipeWriter.Create(ssl, new StreamPipeWriterOptions(minimumBufferSize: WriteBufferSize, leaveOpen: true)));
    }

    public override string ConnectionId
    {
        get => _inner.ConnectionId;
        set => _inner.ConnectionId = value;
    }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items
    {
        get => _inner.Items;
        set => _inner.Items = value;
    }

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _inner.ConnectionClosed;
        set => _inner.ConnectionClosed = value;
    }

    public override EndPoint? LocalEndPoint
    {
        get => _inner.LocalEndPoint;
        set => _inner.LocalEndPoint = value;
    }

    public override EndPoint? RemoteEndPoint
    {
        get => _inner.RemoteEndPoint;
        set => _inner.RemoteEndPoint = value;
    }

    public ReadOnlyMemory<byte> ApplicationProtocol { get; }

    /// <summary>The TLS 1.3 suite the handshake chose.</summary>
    public TlsCipherSuite CipherSuite => _ssl.NegotiatedCipherSuite;

    /// <summary>Client certificates are not asked for on listeners; always null.</summary>
    public X509Certificate2? ClientCertificate
    {
        get => null;
        set => throw new NotSupportedException("This listener does not take client certificates.");
    }

    public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _aborted = true;
        _inner.Abort(abortReason);
    }

    public override async ValueTask DisposeAsync()
    {
        if (_closeTimeout is not { } timeout)
        {
            await CloseAsync().ConfigureAwait(false);
            return;
        }

        // A peer that half-closed and stopped reading would otherwise hold the close, and whoever
        // awaits it, for as long as it lives: what is queued goes out within the deadline, or not at all.
        var closing = CloseAsync();
        try
        {
            await closing.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abort(new ConnectionAbortedException($"The peer did not take the rest within {timeout.TotalSeconds:0.###} s of the close."));

            // The abort closes the socket: the flush or send in flight fails, and the close ends.
            await closing.ConfigureAwait(false);
        }
    }

    private async Task CloseAsync()
    {
        await Transport.Input.CompleteAsync().ConfigureAwait(false);
        try
        {
            await Transport.Output.CompleteAsync().ConfigureAwait(false);
            if (!_aborted)
            {
                // close_notify tells the client the end is deliberate, not a truncation.
                await _ssl.ShutdownAsync().ConfigureAwait(false);
                await _carrier.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // The client is gone or the session already broke: there is nobody to tell.
        }

        try
        {
            await _ssl.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // Disposing flushes what TLS still holds; a connection already broken refuses it.
        }

        await _inner.DisposeAsync().ConfigureAwait(false);
    }
}
