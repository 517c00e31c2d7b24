using System.Numerics;

namespace Forwarder.L7.Routing;

/// <summary>How an http listener normalizes request paths before routing them (and sending them on).</summary>
internal enum PathNormalization
{
    /// <summary>The path is routed and forwarded exactly as the client sent it.</summary>
    Off,

    /// <summary>Dot segments (".", "..", also spelled with %2e) are resolved as RFC 3986 5.2.4 says, never above the root.</summary>
    DotSegments,

    /// <summary><see cref="DotSegments"/>, and runs of slashes merged into one.</summary>
    Full,
}

/// <summary>
/// Envoy's normalize_path and merge_slashes: a path is resolved before it is routed, so that
/// "/public/../admin" cannot take the /public route and then reach /admin upstream. Only "."
/// and ".." segments (with any of their dots written %2e or %2E) are decoded; every other
/// escape, %2F and %5C included, and backslashes stay as sent, since upstreams disagree on what
/// those mean and rewriting them would change requests that are fine.
/// </summary>
internal static class PathNormalizer
{
    /// <summary>
    /// Normalizes <paramref name="path"/> (which must start with '/'; anything else is left
    /// alone) into <paramref name="destination"/>, which needs room for path.Length bytes and may
    /// be the very memory <paramref name="path"/> is in (the result is never longer, and is
    /// written no further ahead than it is read). True when the path changed and
    /// <paramref name="written"/> bytes of <paramref name="destination"/> hold the new one;
    /// false (nothing written) when it is already normal, found without copying for the paths
    /// nearly every request has.
    /// </summary>
    public static bool TryNormalize(ReadOnlySpan<byte> path, Span<byte> destination, PathNormalization mode, out int written)
        => TryNormalize<byte>(path, destination, mode, out written);

    /// <summary>The string form of <see cref="TryNormalize(ReadOnlySpan{byte}, Span{byte}, PathNormalization, out int)"/>: the same string when nothing changes.</summary>
    public static string Normalize(string path, PathNormalization mode)
    {
        if (path.Length == 0 || path.Length > 4096)
        {
            return path.Length == 0 ? path : NormalizeLong(path, mode);
        }

        Span<char> destination = stackalloc char[path.Length];
        return TryNormalize<char>(path, destination, mode, out var written) ? new string(destination[..written]) : path;
    }

    private static string NormalizeLong(string path, PathNormalization mode)
    {
        var destination = new char[path.Length];
        return TryNormalize<char>(path, destination, mode, out var written) ? new string(destination, 0, written) : path;
    }

    private static bool TryNormalize<T>(ReadOnlySpan<T> path, Span<T> destination, PathNormalization mode, out int written)
        where T : unmanaged, IBinaryInteger<T>
    {
        written = 0;
        var slash = T.CreateTruncating('/');
        if (mode == PathNormalization.Off || path.IsEmpty || path[0] != slash || IsClean(path, mode))
        {
            return false;
        }

        if (destination.Length < path.Length)
        {
            throw new ArgumentException("The destination needs room for the whole path.", nameof(destination));
        }

        var merge = mode == PathNormalization.Full;

        // The output always starts with '/' and, between segments, ends with one; each segment is
        // read from at or after where it is written, so the copy may run in place.
        destination[0] = slash;
        var length = 1;
        var position = 1;
        while (true)
        {
            var end = path[position..].IndexOf(slash);
            var last = end < 0;
            var segment = last ? path[position..] : path.Slice(position, end);
            switch (Dots(segment))
            {
                case 1:
                    break;
                case 2:
                    if (length > 1)
                    {
                        // Drop the last output segment, keeping the slash before it.
                        length = destination[..(length - 1)].LastIndexOf(slash) + 1;
                    }

                    break;
                default:
                    if (segment.IsEmpty && merge)
                    {
                        break;
                    }

                    segment.CopyTo(destination[length..]);
                    length += segment.Length;
                    if (!last)
                    {
                        destination[length++] = slash;
                    }

                    break;
            }

            if (last)
            {
                break;
            }

            position += end + 1;
        }

        // Every rewrite removes bytes, so an unchanged length means an unchanged path.
        written = length < path.Length ? length : 0;
        return written > 0;
    }

    /// <summary>
    /// No dot segment can be in a path without a '.' or a '%', nor an empty segment to merge
    /// without "//": the one search nearly every path needs.
    /// </summary>
    private static bool IsClean<T>(ReadOnlySpan<T> path, PathNormalization mode)
        where T : unmanaged, IBinaryInteger<T>
    {
        if (path.IndexOfAny(T.CreateTruncating('.'), T.CreateTruncating('%')) >= 0)
        {
            return false;
        }

        return mode != PathNormalization.Full || path.IndexOf([T.CreateTruncating('/'), T.CreateTruncating('/')]) < 0;
    }

    /// <summary>1 for ".", 2 for "..", each dot written '.' or %2e/%2E; 0 for any other segment.</summary>
    private static int Dots<T>(ReadOnlySpan<T> segment)
        where T : unmanaged, IBinaryInteger<T>
    {
        var dots = 0;
        var i = 0;
        while (i < segment.Length && dots < 3)
        {
            if (segment[i] == T.CreateTruncating('.'))
            {
                i++;
            }
            else if (i + 2 < segment.Length && segment[i] == T.CreateTruncating('%') && segment[i + 1] == T.CreateTruncating('2')
                && (segment[i + 2] | T.CreateTruncating(0x20)) == T.CreateTruncating('e'))
            {
                i += 3;
            }
            else
            {
                return 0;
            }

            dots++;
        }

        return dots is 1 or 2 && i == segment.Length ? dots : 0;
    }
}
