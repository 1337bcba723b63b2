using BpfJit.Runtime.Maps;
using static BpfJit.Tests.Support.MapPrograms;

namespace BpfJit.Tests.Maps;

/// <summary>
/// The LPM_TRIE lookup programs call (<see cref="LpmTrieMap.LookupElem(ulong)"/>), which reads the key's data by
/// single bytes (a program's key is usually still in the store buffer, written byte by byte), against the trie
/// walk and the userspace lookup (8-byte loads) for every data size from 1 to 24 bytes: every shape of full words
/// and a 1- to 7-byte tail.
/// </summary>
[TestFixture]
public unsafe class LpmProgramKeyTests
{
    static byte[] Key(int length, byte[] data) => [.. BitConverter.GetBytes(length), .. data];

    [Test]
    public void ProgramLookupsReadEveryDataSizeAsTheWalkDoes([Range(1, 24)] int dataSize)
    {
        var rng = new Random(dataSize);
        int maxPrefix = dataSize * 8;
        using var map = (LpmTrieMap)MapFactory.Create(MapType.LpmTrie, 4 + dataSize, 4, 512, MapFlags.NoPrealloc, "keys");
        var bases = Enumerable.Range(0, 2).Select(_ => { var b = new byte[dataSize]; rng.NextBytes(b); return b; }).ToArray();
        byte[] Near()
        {
            var d = (byte[])bases[rng.Next(bases.Length)].Clone();
            // A difference in any byte, the last one included: a misread tail byte shows.
            for (int flips = rng.Next(0, 3); flips > 0; flips--) d[rng.Next(dataSize)] ^= (byte)(1 << rng.Next(8));
            return d;
        }
        for (int i = 0; i < 200; i++)
        {
            int length = rng.Next(3) == 0 ? maxPrefix : rng.Next(0, maxPrefix + 1);
            Assert.That(map.Update(Key(length, Near()), U32((uint)i)), Is.EqualTo(0));
        }
        byte* key = stackalloc byte[4 + dataSize];
        var value = new byte[4];
        for (int probe = 0; probe < 400; probe++)
        {
            int length = probe % 2 == 0 ? maxPrefix : rng.Next(0, maxPrefix + 1);
            var k = Key(length, Near());
            k.CopyTo(new Span<byte>(key, k.Length));
            MapEpoch.Enter();
            try
            {
                ulong viaProgram = map.LookupElem((ulong)key);
                ulong viaWalk = map.LookupElemByWalk((ulong)key);
                Assert.That(viaProgram, Is.EqualTo(viaWalk), $"/{length} {Convert.ToHexString(k, 4, dataSize)}");
                int found = map.Lookup(k, value);
                Assert.That(found == 0, Is.EqualTo(viaWalk != 0), "the userspace lookup finds what the walk finds");
                if (viaWalk != 0) Assert.That(BitConverter.ToUInt32(value), Is.EqualTo(*(uint*)viaWalk));
            }
            finally
            {
                MapEpoch.Exit();
            }
        }
    }
}
