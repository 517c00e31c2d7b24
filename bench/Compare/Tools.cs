namespace Forwarder.Bench.Compare;

/// <summary>The peers installed on this machine (Debian paths first, then PATH).</summary>
internal sealed record Tools(string? Haproxy, string? Nginx, string? NginxStreamModule)
{
    public static Tools Find() => new(
        Locate("haproxy", "/usr/sbin/haproxy"),
        Locate("nginx", "/usr/sbin/nginx"),
        File.Exists("/usr/lib/nginx/modules/ngx_stream_module.so") ? "/usr/lib/nginx/modules/ngx_stream_module.so" : null);

    /// <summary>The tool's path, or null when it is not installed.</summary>
    public string? this[string tool] => tool switch
    {
        "haproxy" => Haproxy,
        "nginx" => Nginx,
        _ => null,
    };

    private static string? Locate(string name, string debianPath)
    {
        if (File.Exists(debianPath))
        {
            return debianPath;
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
    }
}
