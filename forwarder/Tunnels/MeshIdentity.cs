using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Forwarder.Tunnels;

/// <summary>What a mesh certificate lets its holder be: a node (opens and accepts links, registers with relays) or a relay.</summary>
internal enum MeshRole
{
    Node,
    Relay,
}

/// <summary>
/// The role and name a mesh certificate proves, written as one URI subject alternative name,
/// <c>forwarder://node/NAME</c> or <c>forwarder://relay/NAME</c>. The CA signs the role with the
/// name, so a relay's certificate cannot open a node link nor a node's answer as a relay, though
/// both chain to the same CA.
/// </summary>
internal static class MeshIdentity
{
    private const string Prefix = "forwarder://";
    private static readonly Asn1Tag UriTag = new(TagClass.ContextSpecific, 6);

    public static string Uri(MeshRole role, string name) => $"{Prefix}{Segment(role)}/{name}";

    /// <summary>The role and name <paramref name="certificate"/> names; null when it names none, or more than one.</summary>
    public static (MeshRole Role, string Name)? Of(X509Certificate2 certificate)
    {
        (MeshRole, string)? found = null;
        foreach (var uri in Uris(certificate))
        {
            if (!uri.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (found is not null || Parse(uri.AsSpan(Prefix.Length)) is not { } identity)
            {
                return null;
            }

            found = identity;
        }

        return found;
    }

    /// <summary>Why <paramref name="certificate"/> does not prove <paramref name="role"/> <paramref name="name"/>, for an error message; null when it does.</summary>
    public static string? Mismatch(X509Certificate2 certificate, MeshRole role, string name) => Of(certificate) switch
    {
        null => $"it has no {Uri(role, name)} name (a URI subject alternative name)",
        var (r, n) when r == role && n == name => null,
        var (r, n) => $"it is for {Uri(r, n)}, not {Uri(role, name)}",
    };

    private static string Segment(MeshRole role) => role == MeshRole.Node ? "node" : "relay";

    private static (MeshRole, string)? Parse(ReadOnlySpan<char> rest)
    {
        var slash = rest.IndexOf('/');
        if (slash < 0)
        {
            return null;
        }

        MeshRole? role = rest[..slash] switch
        {
            "node" => MeshRole.Node,
            "relay" => MeshRole.Relay,
            _ => null,
        };
        var name = rest[(slash + 1)..].ToString();
        return role is { } known && Configuration.ConfigLoader.IsValidName(name) ? (known, name) : null;
    }

    /// <summary>The URI names in the certificate's subject alternative name extension (.NET reads only DNS names and IP addresses there).</summary>
    private static List<string> Uris(X509Certificate2 certificate)
    {
        List<string> uris = [];
        if (certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault() is not { } san)
        {
            return uris;
        }

        try
        {
            var names = new AsnReader(san.RawData, AsnEncodingRules.DER).ReadSequence();
            while (names.HasData)
            {
                if (names.PeekTag() == UriTag)
                {
                    uris.Add(names.ReadCharacterString(UniversalTagNumber.IA5String, UriTag));
                }
                else
                {
                    names.ReadEncodedValue();
                }
            }
        }
        catch (Exception ex) when (ex is AsnContentException or CryptographicException)
        {
            uris.Clear();
        }

        return uris;
    }
}
