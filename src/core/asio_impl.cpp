// Asio and Beast are built once here (BOOST_*_SEPARATE_COMPILATION) rather than in every
// translation unit that includes them.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
