using System.Net;

namespace Forwarder.Bench.Compare;

/// <summary>
/// Configs for the processes a comparison starts, each tuned the way its own documentation
/// recommends for a proxy benchmark: logging off, keep-alive and connection reuse on, the same
/// number of threads for every proxy.
/// </summary>
internal static class PeerConfigs
{
    public static string Forwarder(IPEndPoint listen, IPEndPoint backend, int threads) => $"""
        tcp:
          ioThreads: {threads}
        listeners:
          - name: bench
            listen: {listen}
            service: backend
        services:
          backend:
            endpoints:
              - address: {backend}
        """;

    public static string ForwarderHttp(IPEndPoint listen, IPEndPoint backend, int threads) => $"""
        tcp:
          ioThreads: {threads}
        listeners:
          - name: bench
            listen: {listen}
            protocol: http
            routes:
              - service: backend
        services:
          backend:
            endpoints:
              - address: {backend}
        """;

    /// <summary>An http listener on the native HTTP/2 front, forwarding to an h2c service.</summary>
    public static string ForwarderHttp2(IPEndPoint listen, IPEndPoint backend, int threads) => $"""
        tcp:
          ioThreads: {threads}
        listeners:
          - name: bench
            listen: {listen}
            protocol: http
            http:
              http2: native
            routes:
              - service: backend
        services:
          backend:
            http:
              version: "2"
            endpoints:
              - address: {backend}
        """;

    public static string Haproxy(IPEndPoint listen, IPEndPoint backend, int threads, bool http) => $"""
        global
            nbthread {threads}
            maxconn 8000

        defaults
            mode {(http ? "http" : "tcp")}
            timeout connect 5s
            timeout client 60s
            timeout server 60s
        {(http ? "    option http-keep-alive\n    http-reuse always\n" : string.Empty)}
        frontend bench
            bind {listen}
            default_backend backend

        backend backend
            server backend1 {backend}

        """;

    public static string NginxStream(string directory, IPEndPoint listen, IPEndPoint backend, int threads, string? streamModule) => $$"""
        {{(streamModule is null ? string.Empty : $"load_module {streamModule};")}}
        {{Common(directory, threads)}}
        stream {
            server {
                listen {{listen}};
                proxy_pass {{backend}};
            }
        }
        """;

    public static string NginxHttpProxy(string directory, IPEndPoint listen, IPEndPoint backend, int threads) => $$"""
        {{Common(directory, threads)}}
        http {
            access_log off;
            keepalive_requests 1000000;
        {{TempPaths(directory)}}
            upstream backend {
                server {{backend}};
                keepalive 256;
            }
            server {
                listen {{listen}};
                location / {
                    proxy_pass http://backend;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                }
            }
        }
        """;

    /// <summary>nginx as the HTTP backend: one worker answering every request with a short body.</summary>
    public static string NginxBackend(string directory, IPEndPoint listen) => $$"""
        {{Common(directory, 1)}}
        http {
            access_log off;
            keepalive_requests 1000000;
        {{TempPaths(directory)}}
            server {
                listen {{listen}};
                location / { return 200 "hello world\n"; }
            }
        }
        """;

    private static string Common(string directory, int workers) => $$"""
        worker_processes {{workers}};
        daemon off;
        pid {{directory}}/nginx.pid;
        error_log {{directory}}/error.log warn;
        worker_rlimit_nofile 16384;
        events { worker_connections 8000; }
        """;

    private static string TempPaths(string directory)
        => string.Join('\n', new[] { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }.Select(kind => $"    {kind}_temp_path {directory}/{kind};"));
}
