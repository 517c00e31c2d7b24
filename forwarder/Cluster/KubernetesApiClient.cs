using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Forwarder.Configuration;

namespace Forwarder.Cluster;

/// <summary>A failed API call, with the HTTP status (410 Gone asks for a relist).</summary>
internal sealed class KubernetesApiException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>
/// The few Kubernetes API calls discovery makes (list and watch), over HttpClient with
/// System.Text.Json's generated serializers, so it stays trimmable for NativeAOT. Authenticates
/// with the service-account token, read again on every request since the kubelet rotates it.
/// </summary>
internal sealed class KubernetesApiClient : IDisposable
{
    private static readonly TimeSpan ListTimeout = TimeSpan.FromSeconds(60);
    private readonly HttpClient _http;
    private readonly string _tokenFile;

    private KubernetesApiClient(Uri server, string tokenFile, string caFile)
    {
        _tokenFile = tokenFile;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(15),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (server.Scheme == "https" && File.Exists(caFile))
        {
            var authority = X509CertificateLoader.LoadCertificateFromFile(caFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => TrustedBy(authority, certificate, errors);
        }

        _http = new HttpClient(handler) { BaseAddress = server, Timeout = Timeout.InfiniteTimeSpan };
    }

    public Uri Server => _http.BaseAddress!;

    /// <summary>The client for <paramref name="config"/>; in-cluster when it names no API server.</summary>
    /// <exception cref="InvalidOperationException">In-cluster, but KUBERNETES_SERVICE_HOST or _PORT is not set.</exception>
    public static KubernetesApiClient Create(KubernetesConfig config)
    {
        var server = config.ApiServer ?? InClusterServer();
        return new KubernetesApiClient(server, config.TokenFile, config.CaFile);
    }

    public async Task<KubeList<T>> ListAsync<T>(string path, JsonTypeInfo<KubeList<T>> type, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ListTimeout);
        using var response = await SendAsync(path, timeout.Token).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
        return await JsonSerializer.DeserializeAsync(body, type, timeout.Token).ConfigureAwait(false)
            ?? throw new JsonException($"{path}: the list is null");
    }

    /// <summary>Opens a watch; the caller reads its lines (one event each) until the server ends it.</summary>
    public async Task<HttpResponseMessage> WatchAsync(string path, CancellationToken cancellationToken)
        => await SendAsync(path, cancellationToken).ConfigureAwait(false);

    public void Dispose() => _http.Dispose();

    private async Task<HttpResponseMessage> SendAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (File.Exists(_tokenFile))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(_tokenFile, cancellationToken).ConfigureAwait(false)).Trim());
        }

        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            var status = TryStatus(text);
            throw new KubernetesApiException(response.StatusCode, $"GET {path}: {(int)response.StatusCode} {status?.Reason ?? response.ReasonPhrase}: {status?.Message ?? text}");
        }
    }

    private static KubeStatus? TryStatus(string text)
    {
        try
        {
            return JsonSerializer.Deserialize(text, KubernetesJson.Default.KubeStatus);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Uri InClusterServer()
    {
        var host = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        var port = Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
        {
            throw new InvalidOperationException("cluster.kubernetes.apiServer is not set and this is not a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)");
        }

        return new Uri($"https://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{port}/");
    }

    /// <summary>Checks the API server's certificate against the cluster CA alone, not the system's roots.</summary>
    private static bool TrustedBy(X509Certificate2 authority, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = new X509Certificate2(certificate);
        return chain.Build(leaf);
    }
}
