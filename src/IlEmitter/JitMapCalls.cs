using BpfJit.Runtime.Maps;
using BpfJit.Runtime.Sockets;

namespace BpfJit.IlEmitter;

/// <summary>
/// The type-specific <c>bpf_map_lookup_elem</c> a map-specialised program calls when the verifier pinned
/// the map: the map instance comes from a field of the program's <see cref="JitClosure"/>, and the call
/// goes straight to the sealed map type's lookup (no handle resolution, no virtual call, no table).
/// Each returns exactly what <c>KernelHelpers.MapLookupElem</c> returns for the same map and key.
/// </summary>
public static class JitMapCalls
{
    /// <summary>HASH, PERCPU_HASH, LRU_HASH: the value's address, or 0.</summary>
    public static ulong HashLookup(HashMap map, ulong key) => map.LookupElem(key);

    /// <summary>LPM_TRIE: the longest matching prefix's value address, or 0.</summary>
    public static ulong LpmTrieLookup(LpmTrieMap map, ulong key) => map.LookupElem(key);

    /// <summary>SOCKMAP: the socket at the index with a reference taken, or 0.</summary>
    public static ulong SockMapLookup(SockMap map, ulong key) => map.LookupElem(key);

    /// <summary>SOCKHASH: the socket under the key with a reference taken, or 0.</summary>
    public static ulong SockHashLookup(SockHash map, ulong key) => map.LookupElem(key);
}
