using System.Text.Json;

namespace Forwarder.Cluster;

/// <summary>
/// The last good cluster state on disk (edge autonomy): written whole to a temp file and renamed
/// over the old one, so a crash mid-write leaves the previous state, never half of one.
/// </summary>
internal static class ClusterCache
{
    /// <summary>The state in <paramref name="path"/>; null when there is none yet.</summary>
    /// <exception cref="IOException">It cannot be read.</exception>
    /// <exception cref="JsonException">It is not a cluster state.</exception>
    public static ClusterState? Read(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        using var file = File.OpenRead(path);
        return JsonSerializer.Deserialize(file, KubernetesJson.Default.ClusterState);
    }

    /// <exception cref="IOException">It cannot be written.</exception>
    public static void Write(string path, byte[] json)
    {
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(json);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    public static byte[] Serialize(ClusterState state) => JsonSerializer.SerializeToUtf8Bytes(state, KubernetesJson.Default.ClusterState);
}
