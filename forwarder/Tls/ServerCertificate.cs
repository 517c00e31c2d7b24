using System.Security.Cryptography;
using Forwarder.Configuration;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tls;

/// <summary>
/// One certificate a listener presents, kept current with its files: at most once a second a
/// handshake starts a look, off its own path, at what the files hold, and when that changed a
/// new chain is loaded and swapped in; one look runs at a time. A pair that fails to load (a
/// half-written deploy, a key that does not match) is logged and the chain in use stays, until
/// the files change again.
/// </summary>
internal sealed partial class ServerCertificate
{
    private const long CheckIntervalMs = 1000;

    private readonly CertificateFiles _files;
    private readonly string _listener;
    private readonly ILogger _logger;
    private readonly Action<ServerCertificate> _reloaded;
    private CertificateChain _chain;
    private FileStamp? _failedStamp;
    private long _nextCheck;
    private int _checking;

    public ServerCertificate(CertificateFiles files, string listener, ILogger logger, Action<ServerCertificate> reloaded)
    {
        _files = files;
        _listener = listener;
        _logger = logger;
        _reloaded = reloaded;
        _chain = CertificateChain.Load(files);
        _nextCheck = Environment.TickCount64 + CheckIntervalMs;
    }

    public CertificateFiles Files => _files;

    /// <summary>The chain to present now; when a check is due, starts one off the caller's thread, for later handshakes.</summary>
    public CertificateChain Current
    {
        get
        {
            var now = Environment.TickCount64;
            if (now >= Volatile.Read(ref _nextCheck) && Interlocked.Exchange(ref _checking, 1) == 0)
            {
                Volatile.Write(ref _nextCheck, now + CheckIntervalMs);
                _ = Task.Run(CheckFiles);
            }

            return Volatile.Read(ref _chain);
        }
    }

    private void CheckFiles()
    {
        try
        {
            // Digested before loading: if the files change while they are read, the next check sees it.
            var stamp = FileStamp.Of(_files);
            if (stamp == _chain.Stamp || stamp == _failedStamp)
            {
                return;
            }

            try
            {
                var chain = CertificateChain.Load(_files);
                Volatile.Write(ref _chain, chain);
                LogReloaded(_logger, _listener, _files.Certificate, chain.Leaf.Subject, chain.Leaf.NotAfter.ToUniversalTime());
                _reloaded(this);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                _failedStamp = stamp;
                LogReloadFailed(_logger, _listener, _files.Certificate, _files.Key, ex.Message);
            }
        }
        finally
        {
            Volatile.Write(ref _checking, 0);
        }
    }

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Listener {Listener}: certificate {File} reloaded ({Subject}, valid until {NotAfter:u})")]
    private static partial void LogReloaded(ILogger logger, string listener, string file, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "Listener {Listener}: certificate {File} with key {Key} changed but cannot be loaded ({Reason}); the previous certificate stays in use")]
    private static partial void LogReloadFailed(ILogger logger, string listener, string file, string key, string reason);
}
