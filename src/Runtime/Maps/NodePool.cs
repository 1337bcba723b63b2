namespace BpfJit.Runtime.Maps;

/// <summary>
/// Fixed-size native nodes carved from 64-byte-aligned chunks, so that a large trie is dense in memory (no
/// allocator header between nodes, one cache line per small node, two per line up to 32 bytes). Freed nodes go back to a free list;
/// chunks are released together when the owner is freed. Thread-safe.
/// </summary>
internal sealed unsafe class NodePool(int nodeSize)
{
    const int ChunkBytes = 64 * 1024;

    // Nodes of up to 32 bytes (the index's IPv4 markers) pack two to a cache line; larger ones start a line each.
    readonly int _stride = nodeSize <= 32 ? 32 : (nodeSize + 63) & ~63;
    // A capacity, not []: the parameterless constructor's static empty array is framework code RyuJIT compiles at a
    // process's first LPM_TRIE (docs/perf.md, "Cold start").
    readonly List<nint> _chunks = new(4);
    readonly Stack<nint> _free = new();
    readonly Lock _lock = new();
    byte* _next;
    byte* _end;

    /// <summary>A zeroed node.</summary>
    public byte* Alloc()
    {
        byte* node;
        lock (_lock)
        {
            if (_free.TryPop(out nint reused))
            {
                node = (byte*)reused;
            }
            else
            {
                if (_next + _stride > _end)
                {
                    int bytes = Math.Max(ChunkBytes, _stride);
                    _next = Native.Alloc((nuint)bytes, 64);
                    _end = _next + bytes;
                    _chunks.Add((nint)_next);
                }
                node = _next;
                _next += _stride;
            }
        }
        new Span<byte>(node, _stride).Clear();
        return node;
    }

    /// <summary>The bytes of the chunks carved so far (nodes in use, on the free list, and the unused tail).</summary>
    public long Bytes
    {
        get
        {
            lock (_lock) return (long)_chunks.Count * Math.Max(ChunkBytes, _stride);
        }
    }

    /// <summary>Returns a node (no reader may hold it any more: call through <see cref="MapEpoch"/>).</summary>
    public void Free(byte* node)
    {
        lock (_lock) _free.Push((nint)node);
    }

    /// <summary>Retires a node: it returns to the pool once no reader can hold it.</summary>
    public void Retire(byte* node)
    {
        nint address = (nint)node;
        MapEpoch.Retire(() => Free((byte*)address));
    }

    /// <summary>Releases every chunk (the owner is gone and no reader can hold a node).</summary>
    public void Release()
    {
        lock (_lock)
        {
            foreach (var chunk in _chunks) Native.Free((void*)chunk);
            _chunks.Clear();
            _free.Clear();
            _next = _end = null;
        }
    }
}
