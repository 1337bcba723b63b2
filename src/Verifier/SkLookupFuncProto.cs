using BpfJit.Frontend.Elf;
using BpfJit.Runtime.ProgramTypes;
using BpfJit.Runtime.ProgramTypes.SkLookup;

namespace BpfJit.Verifier;

/// <summary>
/// The helpers the kernel lets an SK_LOOKUP program call as root, read from its declaration
/// (<see cref="SkLookupType"/>), and the shared rules of <see cref="BaseFuncProto"/>. Other types: ask
/// <see cref="ProgramTypeRegistry.Get"/>.
/// </summary>
public static class SkLookupFuncProto
{
    /// <summary>True when helper <paramref name="id"/> is GPL-only (its kernel func proto's <c>gpl_only</c>).</summary>
    public static bool IsGplOnly(int id) => SkLookupType.Instance.IsGplOnly(id);

    /// <summary>The kernel's <c>license_is_gpl_compatible</c> (<see cref="BaseFuncProto.IsGplCompatible"/>).</summary>
    public static bool IsGplCompatible(string license) => BaseFuncProto.IsGplCompatible(license);

    /// <summary>True when the kernel offers helper <paramref name="id"/> to SK_LOOKUP programs.</summary>
    public static bool IsAllowed(int id) => SkLookupType.Instance.IsHelperAllowed(id);

    /// <summary>The helper's kernel name and id as messages print it: <c>bpf_sk_assign#124</c>.</summary>
    public static string Display(int id) => BaseFuncProto.Display(id);

    /// <summary>True when a map of type <paramref name="mapType"/> may be passed to helper <paramref name="id"/> (<see cref="BaseFuncProto.MapCompatible"/>).</summary>
    public static bool MapCompatible(MapType mapType, int id) => BaseFuncProto.MapCompatible(mapType, id, SkLookupType.Instance.MayUpdateSockMap);
}
