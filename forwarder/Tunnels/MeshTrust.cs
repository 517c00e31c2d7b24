using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Forwarder.Tunnels;

/// <summary>
/// The mesh CA certificates (<c>ca</c>), kept current with their file like the node's own key
/// pair: at most once a second a handshake looks at what the file holds, and when that changed
/// the new certificates are used from that handshake on, so a CA rotation needs no restart. A
/// file that does not load (half written, no certificate) is logged and the CA in use stays,
/// until the file changes again.
/// </summary>
internal sealed partial class MeshTrust : IDisposable
{
    private const long CheckIntervalMs = 1000;

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly Lock _checking = new();
    private X509Certificate2Collection _authority;
    private UInt128 _stamp;
    private UInt128? _failedStamp;
    private long _nextCheck;

    public MeshTrust(string path, ILogger logger)
    {
        _path = path;
        _logger = logger;
        _stamp = Stamp(path);
        _authority = Load(path);
        _nextCheck = Environment.TickCount64 + CheckIntervalMs;
    }

    /// <summary>The CA certificates to trust now, read again first when a check is due.</summary>
    public X509Certificate2Collection Current
    {
        get
        {
            var now = Environment.TickCount64;
            if (now >= Volatile.Read(ref _nextCheck) && _checking.TryEnter())
            {
                // In the handshake's own path, unlike the key pair's check: the file is small, and a
                // link refused by a CA already replaced would only be retried after a growing pause.
                try
                {
                    Volatile.Write(ref _nextCheck, now + CheckIntervalMs);
                    Check();
                }
                finally
                {
                    _checking.Exit();
                }
            }

            return Volatile.Read(ref _authority);
        }
    }

    public void Dispose()
    {
        foreach (var certificate in Volatile.Read(ref _authority))
        {
            certificate.Dispose();
        }
    }

    /// <exception cref="CryptographicException">The file holds no certificate.</exception>
    public static X509Certificate2Collection Load(string path)
    {
        var authority = new X509Certificate2Collection();
        authority.ImportFromPemFile(path);
        if (authority.Count == 0)
        {
            throw new CryptographicException("the file holds no certificate");
        }

        return authority;
    }

    private void Check()
    {
        // Digested before loading: if the file changes while it is read, the next check sees it.
        var stamp = Stamp(_path);
        if (stamp == _stamp || stamp == _failedStamp)
        {
            return;
        }

        try
        {
            // The previous certificates are left to the finalizer: a handshake may still be building a chain on them.
            Volatile.Write(ref _authority, Load(_path));
            _stamp = stamp;
            LogReloaded(_logger, _path, string.Join(", ", _authority.Select(c => c.Subject)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            _failedStamp = stamp;
            LogReloadFailed(_logger, _path, ex.Message);
        }
    }

    private static UInt128 Stamp(string path)
    {
        try
        {
            return BinaryPrimitives.ReadUInt128LittleEndian(SHA256.HashData(File.ReadAllBytes(path)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return UInt128.Zero;
        }
    }

    [LoggerMessage(EventId = 716, Level = LogLevel.Information, Message = "Mesh CA {File} reloaded ({Subjects})")]
    private static partial void LogReloaded(ILogger logger, string file, string subjects);

    [LoggerMessage(EventId = 717, Level = LogLevel.Warning, Message = "Mesh CA {File} changed but cannot be loaded ({Reason}); the CA in use stays")]
    private static partial void LogReloadFailed(ILogger logger, string file, string reason);
}
